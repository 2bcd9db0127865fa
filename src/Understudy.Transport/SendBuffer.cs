using System.Buffers;
using System.IO.Pipelines;

namespace Understudy.Transport;

/// <summary>
/// Frames waiting to be written, in pooled chunks. Senders encode into it under the connection's send
/// lock; the writer task swaps it out whole and copies it to the pipe, so many frames share one flush.
/// A span handed out by <see cref="GetSpan"/> is contiguous, which lets an authenticated frame be
/// patched and signed in place.
/// </summary>
internal sealed class SendBuffer : IBufferWriter<byte>
{
    /// <summary>Big enough that a burst of small frames needs few chunks, small enough to waste little when idle.</summary>
    private const int ChunkSize = 64 * 1024;

    private readonly List<byte[]> _chunks = [];
    private readonly List<int> _lengths = [];
    private byte[]? _current;
    private int _used;

    /// <summary>Bytes written.</summary>
    public long Length { get; private set; }

    public void Advance(int count)
    {
        if (_current is null || count < 0 || _used + count > _current.Length)
        {
            throw new InvalidOperationException("Advance past the span handed out");
        }

        _used += count;
        Length += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0) => Ensure(sizeHint).AsMemory(_used);

    public Span<byte> GetSpan(int sizeHint = 0) => Ensure(sizeHint).AsSpan(_used);

    private byte[] Ensure(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_current is not null && _current.Length - _used >= sizeHint)
        {
            return _current;
        }

        if (_current is not null)
        {
            // The tail of a chunk too short for the next frame stays unused: frames never straddle chunks.
            _chunks.Add(_current);
            _lengths.Add(_used);
        }

        _current = ArrayPool<byte>.Shared.Rent(Math.Max(ChunkSize, sizeHint));
        _used = 0;
        return _current;
    }

    /// <summary>
    /// Writes everything to <paramref name="output"/>, a chunk per <c>WriteAsync</c>: a socket writer sends each
    /// straight from the chunk (one system call, no copy), a pipe copies it. Stops early if the reader is gone.
    /// </summary>
    public async ValueTask<FlushResult> WriteToAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        FlushResult result = default;
        for (var i = 0; i < _chunks.Count; i++)
        {
            result = await output.WriteAsync(_chunks[i].AsMemory(0, _lengths[i]), cancellationToken).ConfigureAwait(false);
            if (result.IsCompleted || result.IsCanceled)
            {
                return result;
            }
        }

        if (_current is not null && _used > 0)
        {
            result = await output.WriteAsync(_current.AsMemory(0, _used), cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>Empties the buffer and gives its chunks back to the pool (an idle connection holds none).</summary>
    public void Reset()
    {
        foreach (var chunk in _chunks)
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        _chunks.Clear();
        _lengths.Clear();
        if (_current is not null)
        {
            ArrayPool<byte>.Shared.Return(_current);
            _current = null;
        }

        _used = 0;
        Length = 0;
    }
}

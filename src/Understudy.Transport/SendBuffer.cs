using System.Buffers;
using System.IO.Pipelines;

namespace Understudy.Transport;

/// <summary>
/// Frames waiting to be written, in pooled chunks. Senders encode into it under the connection's send
/// lock; the writer task swaps it out whole and copies it to the pipe, so many frames share one flush.
/// A span handed out by <see cref="GetSpan"/> is contiguous, which lets an authenticated frame be
/// patched and signed in place.
/// </summary>
/// <remarks>
/// A replication frame fits in a chunk (ServerOptions.MaxBatchBytes, 60 KiB). A frame larger than a chunk (one large
/// entry, a snapshot chunk, a large read's answer) takes its array from <see cref="LargeChunks"/>, a pool of the
/// process's own, bounded and never trimmed, not from <see cref="ArrayPool{T}.Shared"/>. The shared pool keeps an array
/// in each thread that gave one back and lets them go a minute or more after their last use: when catch-up frames were
/// 1 MiB, their arrays, taken on the loop's thread and given back on whichever thread ran the writer, stayed behind in
/// five to seven threads, and when they were let go their space stayed in the large object heap, which is not
/// compacted. Here the arrays one burst of large frames used are the ones the next reuses, so what the process keeps
/// for them is bounded; the heap's free space is not, which is why catch-up frames are now small (docs/ARCHITECTURE.md).
/// </remarks>
internal sealed class SendBuffer : IBufferWriter<byte>
{
    /// <summary>Big enough that a burst of small frames needs few chunks, small enough to waste little when idle.</summary>
    internal const int ChunkSize = 64 * 1024;

    /// <summary>Largest array <see cref="LargeChunks"/> keeps: a frame of one largest entry (a MiB and its header) fits.</summary>
    internal const int MaxLargeChunk = 2 * 1024 * 1024;

    /// <summary>Arrays of each size <see cref="LargeChunks"/> keeps: more than a connection's writer holds at once.</summary>
    internal const int LargeChunksKept = 4;

    /// <summary>The process's arrays for frames larger than a chunk (one pool for every connection).</summary>
    internal static readonly ArrayPool<byte> LargeChunks = ArrayPool<byte>.Create(MaxLargeChunk, LargeChunksKept);

    private readonly ArrayPool<byte> _large;

    private readonly List<byte[]> _chunks = [];
    private readonly List<int> _lengths = [];
    private byte[]? _current;
    private int _used;

    public SendBuffer()
        : this(LargeChunks)
    {
    }

    /// <param name="large">Where frames larger than a chunk get their arrays (tests pass their own).</param>
    internal SendBuffer(ArrayPool<byte> large) => _large = large;

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

        _current = sizeHint <= ChunkSize ? ArrayPool<byte>.Shared.Rent(ChunkSize) : _large.Rent(sizeHint);
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
            Give(chunk);
        }

        _chunks.Clear();
        _lengths.Clear();
        if (_current is not null)
        {
            Give(_current);
            _current = null;
        }

        _used = 0;
        Length = 0;
    }

    // A chunk's length says where it came from: the shared pool's are exactly ChunkSize long.
    private void Give(byte[] chunk)
    {
        if (chunk.Length <= ChunkSize)
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
        else
        {
            _large.Return(chunk);
        }
    }
}

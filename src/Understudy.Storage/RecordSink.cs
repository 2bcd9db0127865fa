using System.Buffers;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>Where <see cref="DurableLog"/> puts the records it reads back, checked, in index order.</summary>
internal abstract class RecordSink
{
    /// <summary>Records taken so far.</summary>
    public abstract int Count { get; }

    /// <summary>Takes one valid record (header included) that <paramref name="cursor"/> just returned.</summary>
    public abstract void Add(RecordCursor cursor, ReadOnlySpan<byte> record);
}

/// <summary>Decodes each record into a <see cref="LogEntry"/> (its command copied out).</summary>
internal sealed class EntrySink(int maxCount) : RecordSink
{
    public List<LogEntry> Entries { get; } = new(Math.Min(maxCount, 1024));

    public override int Count => Entries.Count;

    public override void Add(RecordCursor cursor, ReadOnlySpan<byte> record) => Entries.Add(cursor.Parse(record));
}

/// <summary>
/// Copies each record's bytes after its header and index, which are the entry's wire encoding (<see cref="LogRecord"/>:
/// the payload is the index, then the fields in the order and form <see cref="LogEntry"/> writes them on the wire),
/// into a buffer: a pooled one, whose bytes <see cref="ToEncoded"/> hands over in one array of their exact size, or the
/// caller's own, whose bytes it hands over as they are (<see cref="Buffer"/> is then the array to keep).
/// </summary>
internal sealed class WireSink : RecordSink, IDisposable
{
    // The record's header and its stored index: what a record holds beyond the entry's wire encoding.
    private const int Skip = LogRecord.HeaderSize + sizeof(long);

    private readonly bool _pooled;
    private byte[] _buffer;
    private int _length;
    private int _count;

    /// <summary>Into a pooled buffer, copied out by <see cref="ToEncoded"/>.</summary>
    public WireSink(int maxBytes)
    {
        _pooled = true;
        _buffer = ArrayPool<byte>.Shared.Rent(InitialBytes(maxBytes));
    }

    /// <summary>Into <paramref name="buffer"/>, replaced by a larger array of its own if the records need one.</summary>
    public WireSink(byte[] buffer)
    {
        _pooled = false;
        _buffer = buffer;
    }

    public override int Count => _count;

    /// <summary>The buffer the records are in (the caller's, or the larger one that replaced it).</summary>
    public byte[] Buffer => _buffer;

    /// <summary>What a read of up to <paramref name="maxBytes"/> starts with.</summary>
    public static int InitialBytes(int maxBytes) => Math.Clamp(maxBytes, 4096, 4 * 1024 * 1024);

    public override void Add(RecordCursor cursor, ReadOnlySpan<byte> record)
    {
        var wire = record[Skip..];
        if (_buffer.Length - _length < wire.Length)
        {
            var size = Math.Max(_buffer.Length * 2, _length + wire.Length);
            var larger = _pooled ? ArrayPool<byte>.Shared.Rent(size) : new byte[size];
            _buffer.AsSpan(0, _length).CopyTo(larger);
            if (_pooled)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = larger;
        }

        wire.CopyTo(_buffer.AsSpan(_length));
        _length += wire.Length;
        _count++;
    }

    /// <summary>
    /// The entries read: in an array of their own when pooled (a frame may wait in a connection's queue after the
    /// read), else the caller's buffer as it is.
    /// </summary>
    public EncodedEntries ToEncoded()
    {
        if (_count == 0)
        {
            return default;
        }

        if (!_pooled)
        {
            return new EncodedEntries(_count, _buffer.AsMemory(0, _length));
        }

        var bytes = GC.AllocateUninitializedArray<byte>(_length);
        _buffer.AsSpan(0, _length).CopyTo(bytes);
        return new EncodedEntries(_count, bytes);
    }

    public void Dispose()
    {
        if (_pooled)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}

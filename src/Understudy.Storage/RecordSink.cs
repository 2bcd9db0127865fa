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
/// into a pooled buffer; <see cref="ToEncoded"/> hands them over in one array of their exact size.
/// </summary>
internal sealed class WireSink(int maxBytes) : RecordSink, IDisposable
{
    // The record's header and its stored index: what a record holds beyond the entry's wire encoding.
    private const int Skip = LogRecord.HeaderSize + sizeof(long);

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(Math.Clamp(maxBytes, 4096, 4 * 1024 * 1024));
    private int _length;
    private int _count;

    public override int Count => _count;

    public override void Add(RecordCursor cursor, ReadOnlySpan<byte> record)
    {
        var wire = record[Skip..];
        if (_buffer.Length - _length < wire.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + wire.Length));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        wire.CopyTo(_buffer.AsSpan(_length));
        _length += wire.Length;
        _count++;
    }

    /// <summary>The entries read, in an array of their own (a frame may wait in a connection's queue after the read).</summary>
    public EncodedEntries ToEncoded()
    {
        if (_count == 0)
        {
            return default;
        }

        var bytes = GC.AllocateUninitializedArray<byte>(_length);
        _buffer.AsSpan(0, _length).CopyTo(bytes);
        return new EncodedEntries(_count, bytes);
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}

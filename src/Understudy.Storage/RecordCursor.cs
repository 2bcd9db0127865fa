using System.Buffers;
using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>
/// Walks the records of a segment file from an offset up to a byte limit with positioned reads through a
/// buffer, checking each record's checksum and index. For reads of written data: anything that is not a whole,
/// valid record is damage (a <see cref="StorageException"/>), since the limit never covers a write in progress.
/// The buffer is pooled (reads are frequent and short-lived): dispose the cursor once its records are parsed.
/// </summary>
internal sealed class RecordCursor : IDisposable
{
    // Under the large object heap's threshold (85,000 bytes), and more than a catch-up frame's 60 KiB of records.
    private const int ChunkBytes = 64 * 1024;

    private readonly SafeFileHandle _handle;
    private readonly string _path;
    private readonly long _limit;
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
    private long _bufferStart;
    private int _bufferLength;

    /// <param name="handle">A handle open for reading.</param>
    /// <param name="path">For messages.</param>
    /// <param name="offset">Where the first record starts.</param>
    /// <param name="limit">End of the data to read (bytes written).</param>
    /// <param name="index">The index the first record must hold.</param>
    public RecordCursor(SafeFileHandle handle, string path, long offset, long limit, long index)
    {
        _handle = handle;
        _path = path;
        _limit = limit;
        Offset = offset;
        Index = index;
        _bufferStart = offset;
    }

    /// <summary>Where the next record starts.</summary>
    public long Offset { get; private set; }

    /// <summary>The index the next record must hold.</summary>
    public long Index { get; private set; }

    public bool AtEnd => Offset >= _limit;

    /// <summary>
    /// The next record (header included), valid and holding <see cref="Index"/>; false at the limit. The span
    /// is good until the next call.
    /// </summary>
    public bool Next(out ReadOnlySpan<byte> record)
    {
        record = default;
        if (Offset >= _limit)
        {
            return false;
        }

        var header = Ensure(LogRecord.HeaderSize);
        var payloadLength = BinaryPrimitives.ReadUInt32LittleEndian(header);
        if (payloadLength is < LogRecord.FixedPayloadSize or > LogRecord.MaxPayloadSize)
        {
            throw Damaged($"implausible record length {payloadLength}");
        }

        var size = LogRecord.HeaderSize + (int)payloadLength;
        var data = Ensure(size);
        if (LogRecord.Inspect(data, out _, out var problem) != RecordState.Valid)
        {
            throw Damaged(problem);
        }

        var index = BinaryPrimitives.ReadInt64LittleEndian(data[LogRecord.HeaderSize..]);
        if (index != Index)
        {
            throw new StorageException(
                $"Segment '{_path}' holds index {index} at byte {Offset} where index {Index} belongs: the log is out of order. {LogRecovery.Remedy}");
        }

        record = data;
        Offset += size;
        Index++;
        return true;
    }

    /// <summary>Decodes a record <see cref="Next"/> returned; copies the command out.</summary>
    public LogEntry Parse(ReadOnlySpan<byte> record)
    {
        try
        {
            return LogRecord.Read(record);
        }
        catch (ProtocolException e)
        {
            throw new StorageException(
                $"Segment '{_path}' has a record at byte {Offset - record.Length} whose checksum matches but whose fields do not parse ({e.Message}): was it written by a newer version of Understudy? {LogRecovery.Remedy}", e);
        }
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }

    private StorageException Damaged(string problem) =>
        new($"Segment '{_path}' is damaged at byte {Offset} ({problem}), inside data the log wrote and synced: committed entries there cannot be read. {LogRecovery.Remedy}");

    /// <summary>The <paramref name="count"/> bytes at <see cref="Offset"/>, reading more of the file if needed.</summary>
    private ReadOnlySpan<byte> Ensure(int count)
    {
        if (Offset + count > _limit)
        {
            throw Damaged($"record cut short: {_limit - Offset} of {count} bytes before the end of the written data");
        }

        var at = (int)(Offset - _bufferStart);
        if (at + count <= _bufferLength)
        {
            return _buffer.AsSpan(at, count);
        }

        if (_buffer.Length < count)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(count, _buffer.Length * 2));
        }

        var want = (int)Math.Min(_buffer.Length, _limit - Offset);
        var read = 0;
        while (read < want)
        {
            var n = RandomAccess.Read(_handle, _buffer.AsSpan(read, want - read), Offset + read);
            if (n == 0)
            {
                break;
            }

            read += n;
        }

        _bufferStart = Offset;
        _bufferLength = read;
        if (read < count)
        {
            throw Damaged($"the file ends {read} bytes after this offset, before the {count} bytes the log wrote there");
        }

        return _buffer.AsSpan(0, count);
    }
}

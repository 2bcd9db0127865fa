using System.Buffers.Binary;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>What <see cref="LogRecord.Inspect"/> found at a position in a segment.</summary>
internal enum RecordState
{
    /// <summary>A whole record whose checksum matches.</summary>
    Valid,

    /// <summary>The data ends before the record does (a write cut short, or the end of the file).</summary>
    Truncated,

    /// <summary>The bytes are there but are not a record: implausible length or checksum mismatch.</summary>
    Corrupt,
}

/// <summary>
/// The on-disk layout of one log entry. Little-endian throughout:
/// <code>
/// u32 payloadLength | u32 crc32c(payloadLength bytes ++ payload) | payload
/// payload = i64 index | i64 epoch | u8 kind | u64 clientId | i64 requestSeq | i64 firstIncomplete | i64 logTimeMs | i32 commandLength | command
/// </code>
/// The checksum covers the length field too, so a flipped bit in the length is caught rather than read as a
/// short record. The index is stored (unlike on the wire) so recovery can prove the log is contiguous.
/// </summary>
internal static class LogRecord
{
    public const int HeaderSize = 8;

    public const int FixedPayloadSize = 8 + 8 + 1 + 8 + 8 + 8 + 8 + 4;

    /// <summary>
    /// Largest command a record holds: well above the protocol's 16 MiB frame limit, and small enough that
    /// recovery can reject a garbage length without trying to read gigabytes.
    /// </summary>
    public const int MaxCommandSize = 64 * 1024 * 1024;

    public const int MaxPayloadSize = FixedPayloadSize + MaxCommandSize;

    public static int SizeOf(in LogEntry entry) => HeaderSize + FixedPayloadSize + entry.Command.Length;

    /// <summary>Encodes <paramref name="entry"/> into exactly <see cref="SizeOf"/> bytes.</summary>
    public static void Write(in LogEntry entry, Span<byte> destination)
    {
        var payloadLength = FixedPayloadSize + entry.Command.Length;
        var payload = destination.Slice(HeaderSize, payloadLength);
        var w = new WireWriter(payload);
        w.WriteInt64(entry.Index);
        w.WriteInt64(entry.Epoch);
        w.WriteByte((byte)entry.Kind);
        w.WriteUInt64(entry.ClientId);
        w.WriteInt64(entry.RequestSeq);
        w.WriteInt64(entry.FirstIncomplete);
        w.WriteInt64(entry.LogTimeMs);
        w.WriteBytes(entry.Command.Span);

        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)payloadLength);
        var crc = Crc32C.Compute(destination[..4], payload);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], crc);
    }

    /// <summary>Checks the record that starts at the beginning of <paramref name="data"/>.</summary>
    public static RecordState Inspect(ReadOnlySpan<byte> data, out int recordSize, out string problem)
    {
        recordSize = 0;
        if (data.Length < HeaderSize)
        {
            problem = $"record header cut short ({data.Length} of {HeaderSize} bytes)";
            return RecordState.Truncated;
        }

        var payloadLength = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (payloadLength is < FixedPayloadSize or > MaxPayloadSize)
        {
            problem = $"implausible record length {payloadLength}";
            return RecordState.Corrupt;
        }

        recordSize = HeaderSize + (int)payloadLength;
        if (data.Length < recordSize)
        {
            problem = $"record cut short ({data.Length} of {recordSize} bytes)";
            return RecordState.Truncated;
        }

        var stored = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        var actual = Crc32C.Compute(data[..4], data.Slice(HeaderSize, (int)payloadLength));
        if (stored != actual)
        {
            problem = $"checksum mismatch (stored {stored:x8}, computed {actual:x8})";
            return RecordState.Corrupt;
        }

        problem = string.Empty;
        return RecordState.Valid;
    }

    /// <summary>Decodes a record that <see cref="Inspect"/> found valid; copies the command out.</summary>
    /// <exception cref="ProtocolException">The checksum matched but the fields do not parse.</exception>
    public static LogEntry Read(ReadOnlySpan<byte> record)
    {
        var payloadLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(record);
        var r = new WireReader(record.Slice(HeaderSize, payloadLength), "log record");
        var index = r.ReadInt64("index");
        var epoch = r.ReadInt64("epoch");
        var kind = r.ReadEnum("kind", EntryKind.EpochStart);
        var clientId = r.ReadUInt64("clientId");
        var requestSeq = r.ReadInt64("requestSeq");
        var firstIncomplete = r.ReadInt64("firstIncomplete");
        var logTimeMs = r.ReadInt64("logTimeMs");
        var command = r.ReadBytes("command");
        r.End();
        return new LogEntry(index, epoch, kind, clientId, requestSeq, firstIncomplete, command, logTimeMs);
    }

    /// <summary>
    /// The offset of the first valid record anywhere in <paramref name="data"/> (any byte position), or -1.
    /// Recovery uses it to tell a torn tail (nothing valid follows) from damage inside the log.
    /// </summary>
    public static int FindValid(ReadOnlySpan<byte> data)
    {
        for (var at = 0; at + HeaderSize + FixedPayloadSize <= data.Length; at++)
        {
            if (Inspect(data[at..], out _, out _) == RecordState.Valid)
            {
                return at;
            }
        }

        return -1;
    }
}

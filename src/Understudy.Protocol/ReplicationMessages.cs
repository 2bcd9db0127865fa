using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Understudy.Protocol;

/// <summary>
/// Primary to backup: entries after (<see cref="PrevIndex"/>, <see cref="PrevEpoch"/>), and how far
/// the log is committed. A backup takes it only if the epoch is not older than its own and its log
/// holds an entry at <see cref="PrevIndex"/> with <see cref="PrevEpoch"/>. With no entries it is a probe
/// that also carries the commit index. The entries are <see cref="Entries"/> or, for a run the primary read back from its
/// log on disk, <see cref="Encoded"/> (never both): the same bytes on the wire, and a decoded frame always has
/// <see cref="Entries"/>.
/// </summary>
public readonly record struct Replicate(
    long Epoch,
    NodeAddress From,
    long PrevIndex,
    long PrevEpoch,
    long CommitIndex,
    long SentAt,
    ReadOnlyMemory<LogEntry> Entries) : IMessage<Replicate>
{
    /// <summary>A frame whose entries are already encoded (a backlog read back from disk): the same bytes on the wire.</summary>
    public Replicate(long epoch, NodeAddress from, long prevIndex, long prevEpoch, long commitIndex, long sentAt, EncodedEntries encoded)
        : this(epoch, from, prevIndex, prevEpoch, commitIndex, sentAt, ReadOnlyMemory<LogEntry>.Empty)
    {
        Encoded = encoded;
    }

    public MessageType Type => MessageType.Replicate;

    /// <summary>
    /// The entries as their wire encoding, when the sender had them so (a backlog read from disk) rather than as
    /// <see cref="Entries"/>. Not a field of the frame of its own: another form of its entries, set only by the constructor.
    /// </summary>
    public EncodedEntries Encoded { get; }

    /// <summary>How many entries the frame carries, in either form.</summary>
    public int EntryCount => Entries.Length + Encoded.Count;

    public int Size
    {
        get
        {
            var size = 8 + WireWriter.SizeOf(From) + 8 + 8 + 8 + 8 + 4 + Encoded.Bytes.Length;
            foreach (var e in Entries.Span)
            {
                size += e.WireSize;
            }

            return size;
        }
    }

    /// <summary>Index of the last entry carried, or <see cref="PrevIndex"/> if none.</summary>
    public long LastIndex => PrevIndex + EntryCount;

    /// <summary>This frame with its <see cref="Encoded"/> entries decoded into <see cref="Entries"/> (as a receiver over the wire gets it).</summary>
    /// <exception cref="ProtocolException">The encoded entries are malformed.</exception>
    public Replicate Decoded() => Encoded.Count == 0 ? this : new(Epoch, From, PrevIndex, PrevEpoch, CommitIndex, SentAt, Encoded.Decode(PrevIndex + 1));

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(From);
        w.WriteInt64(PrevIndex);
        w.WriteInt64(PrevEpoch);
        w.WriteInt64(CommitIndex);
        w.WriteInt64(SentAt);
        if (Entries.Length > 0 && Encoded.Count > 0)
        {
            throw new InvalidOperationException("a Replicate frame carries its entries either decoded or encoded, not both");
        }

        w.WriteInt32(EntryCount);
        foreach (var e in Entries.Span)
        {
            e.Format(ref w);
        }

        w.WriteRaw(Encoded.Bytes.Span);
    }

    public static Replicate Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(Replicate));
        var epoch = r.ReadInt64("epoch");
        var from = r.ReadAddress("from");
        var prevIndex = r.ReadInt64("prevIndex");
        var prevEpoch = r.ReadInt64("prevEpoch");
        var commitIndex = r.ReadInt64("commitIndex");
        var sentAt = r.ReadInt64("sentAt");
        var count = r.ReadCount("entries", 37);
        if (prevIndex < 0 || commitIndex < 0 || epoch < 0)
        {
            throw new ProtocolException($"Replicate: negative index or epoch (epoch={epoch} prevIndex={prevIndex} commitIndex={commitIndex})");
        }

        // The frame's commands are copied into a few shared arrays and sliced (CommandPieces): a backup catching up
        // parses several hundred thousand entries a second, and one array per command was that many small objects
        // for the GC to promote (they live on in the log window and the writer's queue).
        // The entry array comes from the pool: a catch-up frame's (8,192 entries of 72 bytes) was a fresh array on the large
        // object heap per frame, tens of MiB a second of it, whose budget sets off full collections. Its one receiver gives
        // it back (Recycle) once the frame is handled; anyone else simply lets the collector have it.
        var entries = count == 0 ? [] : ArrayPool<LogEntry>.Shared.Rent(count);
        var commands = new CommandPieces(r.Remaining - (count * LogEntry.WireFixedSize));
        for (var i = 0; i < count; i++)
        {
            entries[i] = LogEntry.Parse(ref r, prevIndex + 1 + i, ref commands);
        }

        r.End();
        return new Replicate(epoch, from, prevIndex, prevEpoch, commitIndex, sentAt, new ReadOnlyMemory<LogEntry>(entries, 0, count));
    }

    /// <summary>
    /// Gives the entry array of a frame decoded by <see cref="Parse"/> back to the pool. Only the frame's one receiver
    /// calls it, once, after its last use of <see cref="Entries"/> (whatever it keeps must have been copied out);
    /// never for a frame built any other way.
    /// </summary>
    public static void Recycle(in Replicate decoded)
    {
        if (MemoryMarshal.TryGetArray(decoded.Entries, out var segment) && segment.Array is { Length: > 0 } array)
        {
            // Cleared: the pool must not keep the frame's commands alive.
            ArrayPool<LogEntry>.Shared.Return(array, clearArray: true);
        }
    }
}

/// <summary>
/// Backup to primary. On success, <see cref="MatchIndex"/> is how far the backup's log is known to
/// equal the primary's and is on disk (the commit rule counts this), and <see cref="VerifiedIndex"/>
/// how far it is known to equal it, durable or not (where streaming resumes). On failure the hint
/// fields say where to resume: <see cref="ConflictEpoch"/> is the epoch of the backup's entry at the
/// frame's <see cref="PrevIndex"/> (0 if it has none there), <see cref="ConflictIndex"/> the first index
/// it holds of that epoch and <see cref="LogEnd"/> its last index. An <see cref="Epoch"/> newer than the
/// primary's tells it that it has been replaced.
/// </summary>
public readonly record struct ReplicateAck(
    long Epoch,
    NodeAddress From,
    ulong Incarnation,
    bool Success,
    long MatchIndex,
    long VerifiedIndex,
    long LogEnd,
    long PrevIndex,
    long ConflictEpoch,
    long ConflictIndex,
    long EchoSentAt) : IMessage<ReplicateAck>
{
    public MessageType Type => MessageType.ReplicateAck;

    public int Size => 8 + WireWriter.SizeOf(From) + 8 + 1 + (8 * 7);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(From);
        w.WriteUInt64(Incarnation);
        w.WriteBool(Success);
        w.WriteInt64(MatchIndex);
        w.WriteInt64(VerifiedIndex);
        w.WriteInt64(LogEnd);
        w.WriteInt64(PrevIndex);
        w.WriteInt64(ConflictEpoch);
        w.WriteInt64(ConflictIndex);
        w.WriteInt64(EchoSentAt);
    }

    public static ReplicateAck Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(ReplicateAck));
        var m = new ReplicateAck(
            r.ReadInt64("epoch"),
            r.ReadAddress("from"),
            r.ReadUInt64("incarnation"),
            r.ReadBool("success"),
            r.ReadInt64("matchIndex"),
            r.ReadInt64("verifiedIndex"),
            r.ReadInt64("logEnd"),
            r.ReadInt64("prevIndex"),
            r.ReadInt64("conflictEpoch"),
            r.ReadInt64("conflictIndex"),
            r.ReadInt64("echoSentAt"));
        r.End();
        return m;
    }
}

/// <summary>
/// Primary to backup: bytes <see cref="Offset"/>.. of the stored snapshot through <see cref="SnapshotIndex"/> (whose
/// entry has <see cref="SnapshotEpoch"/>), a file of <see cref="TotalLength"/> bytes, for a backup that needs entries the
/// primary's log no longer holds. <see cref="Checksum"/> is the CRC-32C of <see cref="Data"/>, so a chunk damaged on the
/// way is refused before it is written. Once installed, the backup's log continues after <see cref="ResumeAfter"/>
/// (of <see cref="ResumeEpoch"/>): at or below the snapshot's index, so a state machine that reads its data back from
/// the log (the message store) is sent the entries its snapshot still reads.
/// </summary>
public readonly record struct SnapshotChunk(
    long Epoch,
    NodeAddress From,
    long SnapshotIndex,
    long SnapshotEpoch,
    long TotalLength,
    long Offset,
    uint Checksum,
    ReadOnlyMemory<byte> Data,
    bool Last,
    long ResumeAfter,
    long ResumeEpoch) : IMessage<SnapshotChunk>
{
    /// <summary>
    /// Largest chunk (1 MiB): a few in flight keep a loopback link busy, and one frame stays far below
    /// <see cref="MessageCodec.DefaultMaxFrameSize"/>. Checked before the data is copied out of a frame.
    /// </summary>
    public const int MaxDataBytes = 1024 * 1024;

    public MessageType Type => MessageType.SnapshotChunk;

    public int Size => 8 + WireWriter.SizeOf(From) + (8 * 4) + 4 + WireWriter.SizeOf(Data.Span) + 1 + 8 + 8;

    /// <summary>The CRC-32C (Castagnoli) a chunk carries of its data.</summary>
    public static uint ChecksumOf(ReadOnlySpan<byte> data)
    {
        var crc = uint.MaxValue;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(From);
        w.WriteInt64(SnapshotIndex);
        w.WriteInt64(SnapshotEpoch);
        w.WriteInt64(TotalLength);
        w.WriteInt64(Offset);
        w.WriteInt32(unchecked((int)Checksum));
        w.WriteBytes(Data.Span);
        w.WriteBool(Last);
        w.WriteInt64(ResumeAfter);
        w.WriteInt64(ResumeEpoch);
    }

    public static SnapshotChunk Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(SnapshotChunk));
        var epoch = r.ReadInt64("epoch");
        var from = r.ReadAddress("from");
        var index = r.ReadInt64("snapshotIndex");
        var snapshotEpoch = r.ReadInt64("snapshotEpoch");
        var total = r.ReadInt64("totalLength");
        var offset = r.ReadInt64("offset");
        var checksum = unchecked((uint)r.ReadInt32("checksum"));
        var data = r.ReadBytesSpan("data");
        if (data.Length > MaxDataBytes)
        {
            throw new ProtocolException($"SnapshotChunk: {data.Length} bytes of data, over the limit of {MaxDataBytes}");
        }

        if (epoch < 0 || index < 1 || snapshotEpoch < 0 || offset < 0 || total < 0 || offset + data.Length > total)
        {
            throw new ProtocolException($"SnapshotChunk: out of range (epoch={epoch} index={index} offset={offset} length={data.Length} total={total})");
        }

        var copy = data.ToArray();
        var last = r.ReadBool("last");
        var resumeAfter = r.ReadInt64("resumeAfter");
        var resumeEpoch = r.ReadInt64("resumeEpoch");
        if (resumeAfter < 0 || resumeAfter > index)
        {
            throw new ProtocolException($"SnapshotChunk: resumes after {resumeAfter}, not within 0..{index}");
        }

        r.End();
        return new SnapshotChunk(epoch, from, index, snapshotEpoch, total, offset, checksum, copy, last, resumeAfter, resumeEpoch);
    }
}

/// <summary>
/// Backup to primary, for each snapshot chunk: <see cref="NextOffset"/> is how many bytes of snapshot
/// <see cref="SnapshotIndex"/> it holds from the start without a gap (where the primary continues: after a lost,
/// damaged or out-of-order chunk, or a broken connection, it resends from there). <see cref="Installed"/> says the
/// snapshot is in place and the log continues after <see cref="LogEnd"/>: the primary goes on with entries.
/// </summary>
public readonly record struct SnapshotAck(
    long Epoch,
    NodeAddress From,
    ulong Incarnation,
    long SnapshotIndex,
    long NextOffset,
    bool Installed,
    long LogEnd) : IMessage<SnapshotAck>
{
    public MessageType Type => MessageType.SnapshotAck;

    public int Size => 8 + WireWriter.SizeOf(From) + 8 + 8 + 8 + 1 + 8;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(From);
        w.WriteUInt64(Incarnation);
        w.WriteInt64(SnapshotIndex);
        w.WriteInt64(NextOffset);
        w.WriteBool(Installed);
        w.WriteInt64(LogEnd);
    }

    public static SnapshotAck Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(SnapshotAck));
        var m = new SnapshotAck(
            r.ReadInt64("epoch"),
            r.ReadAddress("from"),
            r.ReadUInt64("incarnation"),
            r.ReadInt64("snapshotIndex"),
            r.ReadInt64("nextOffset"),
            r.ReadBool("installed"),
            r.ReadInt64("logEnd"));
        r.End();
        if (m.NextOffset < 0)
        {
            throw new ProtocolException($"SnapshotAck: negative offset {m.NextOffset}");
        }

        return m;
    }
}

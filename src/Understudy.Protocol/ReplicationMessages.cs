namespace Understudy.Protocol;

/// <summary>
/// Primary to backup: entries after (<see cref="PrevIndex"/>, <see cref="PrevEpoch"/>), and how far
/// the log is committed. A backup takes it only if the epoch is not older than its own and its log
/// holds an entry at <see cref="PrevIndex"/> with <see cref="PrevEpoch"/>. With no entries it is a probe
/// that also carries the commit index.
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
    public MessageType Type => MessageType.Replicate;

    public int Size
    {
        get
        {
            var size = 8 + WireWriter.SizeOf(From) + 8 + 8 + 8 + 8 + 4;
            foreach (var e in Entries.Span)
            {
                size += e.WireSize;
            }

            return size;
        }
    }

    /// <summary>Index of the last entry carried, or <see cref="PrevIndex"/> if none.</summary>
    public long LastIndex => PrevIndex + Entries.Length;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(From);
        w.WriteInt64(PrevIndex);
        w.WriteInt64(PrevEpoch);
        w.WriteInt64(CommitIndex);
        w.WriteInt64(SentAt);
        w.WriteInt32(Entries.Length);
        foreach (var e in Entries.Span)
        {
            e.Format(ref w);
        }
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

        var entries = new LogEntry[count];
        for (var i = 0; i < count; i++)
        {
            entries[i] = LogEntry.Parse(ref r, prevIndex + 1 + i);
        }

        r.End();
        return new Replicate(epoch, from, prevIndex, prevEpoch, commitIndex, sentAt, entries);
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

namespace Understudy.Protocol;

/// <summary>What a log entry carries.</summary>
public enum EntryKind : byte
{
    /// <summary>A client command for the state machine.</summary>
    Command = 1,

    /// <summary>Written by a new primary at the start of its epoch; commits everything before it.</summary>
    EpochStart = 2,
}

/// <summary>
/// One entry of the replicated log. <see cref="Index"/> is its position (from 1) and
/// <see cref="Epoch"/> the epoch of the primary that wrote it: two logs holding an entry with the
/// same index and epoch are identical up to there (Raft's log matching). <see cref="LogTimeMs"/> is the clock of
/// the primary that created it (Unix milliseconds), never decreasing along the log, so that every replica decides
/// time-dependent things (session expiry, retention by age) from the log rather than from its own clock.
/// </summary>
public readonly record struct LogEntry(
    long Index,
    long Epoch,
    EntryKind Kind,
    ulong ClientId,
    long RequestSeq,
    long FirstIncomplete,
    ReadOnlyMemory<byte> Command,
    long LogTimeMs)
{
    /// <summary>Bytes on the wire of everything but the command, whose length is one of them.</summary>
    public const int WireFixedSize = 8 + 1 + 8 + 8 + 8 + 8 + 4;

    /// <summary>Bytes on the wire, index excluded (it follows from the frame's prevIndex).</summary>
    public int WireSize => WireFixedSize + Command.Length;

    internal void Format(ref WireWriter w)
    {
        w.WriteInt64(Epoch);
        w.WriteByte((byte)Kind);
        w.WriteUInt64(ClientId);
        w.WriteInt64(RequestSeq);
        w.WriteInt64(FirstIncomplete);
        w.WriteInt64(LogTimeMs);
        w.WriteBytes(Command.Span);
    }

    /// <summary>Reads one entry; its command is copied into <paramref name="commands"/>.</summary>
    internal static LogEntry Parse(ref WireReader r, long index, ref CommandPieces commands)
    {
        var epoch = r.ReadInt64("entry.epoch");
        var kind = r.ReadEnum("entry.kind", EntryKind.EpochStart);
        var clientId = r.ReadUInt64("entry.clientId");
        var seq = r.ReadInt64("entry.requestSeq");
        var firstIncomplete = r.ReadInt64("entry.firstIncomplete");
        var logTimeMs = r.ReadInt64("entry.logTimeMs");
        var command = commands.Copy(r.ReadBytesSpan("entry.command"));
        return new LogEntry(index, epoch, kind, clientId, seq, firstIncomplete, command, logTimeMs);
    }

    public override string ToString() => $"{Index}@{Epoch}:{Kind}";
}

using System.Buffers;
using System.Buffers.Binary;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>
/// What committed log entries are applied to: the user's state machine plus the deduplication table.
/// Applying the same committed prefix on any server gives the same bytes from <see cref="WriteSnapshot"/>.
/// </summary>
public sealed class ReplicatedState
{
    private readonly IDeduplicationRule _deduplication;

    public ReplicatedState(IStateMachine machine, int maxSessions = 100_000, IDeduplicationRule? deduplication = null)
        : this(machine, maxSessions, Timeout.InfiniteTimeSpan, deduplication)
    {
    }

    /// <param name="machine">The user's state machine.</param>
    /// <param name="maxSessions">Most client sessions kept.</param>
    /// <param name="sessionIdleTimeout">A client session idle this long in log time expires (<see cref="Timeout.InfiniteTimeSpan"/>: never).</param>
    /// <param name="deduplication">What counts as a retry (tests swap in a broken rule); the table's answer by default.</param>
    public ReplicatedState(IStateMachine machine, int maxSessions, TimeSpan sessionIdleTimeout, IDeduplicationRule? deduplication = null)
    {
        Machine = machine;
        Sessions = new ClientSessions(maxSessions, sessionIdleTimeout);
        _deduplication = deduplication ?? TableDeduplicationRule.Instance;
    }

    public IStateMachine Machine { get; }

    public ClientSessions Sessions { get; }

    /// <summary>Index of the last entry applied.</summary>
    public long AppliedIndex { get; private set; }

    /// <summary>
    /// The highest log time applied (Unix ms): a new primary never stamps an entry below it, even when the log entries
    /// that carried it were compacted under a snapshot.
    /// </summary>
    public long LastLogTimeMs { get; private set; }

    /// <summary>Applies the next committed entry; returns the result owed to the client that sent it.</summary>
    public ReadOnlyMemory<byte> Apply(in LogEntry entry) => Apply(entry, out _);

    /// <summary>
    /// Applies the next committed entry; returns the result owed to the client that sent it. Sessions idle past the
    /// timeout at the entry's log time expire first, on every replica at the same index. <paramref name="outcome"/>
    /// says whether the command was applied, recognised as a duplicate, or refused because its session expired.
    /// </summary>
    public ReadOnlyMemory<byte> Apply(in LogEntry entry, out SessionWrite outcome)
    {
        if (entry.Index != AppliedIndex + 1)
        {
            throw new InvalidOperationException($"entries must be applied in order: applied {AppliedIndex}, got {entry.Index}");
        }

        AppliedIndex = entry.Index;
        LastLogTimeMs = Math.Max(LastLogTimeMs, entry.LogTimeMs);
        Sessions.ExpireIdle(LastLogTimeMs);
        outcome = SessionWrite.Apply;
        if (entry.Kind != EntryKind.Command)
        {
            return ReadOnlyMemory<byte>.Empty;
        }

        outcome = Sessions.Begin(entry.ClientId, entry.RequestSeq, entry.FirstIncomplete, entry.Index, LastLogTimeMs, out var previous);
        if (outcome == SessionWrite.Expired
            || (outcome == SessionWrite.Duplicate && _deduplication.Judge(DedupLookup.Applied, entry.ClientId, entry.RequestSeq) != DedupLookup.New))
        {
            return outcome == SessionWrite.Expired ? SessionExpiredText(entry.RequestSeq) : previous;
        }

        var result = Machine.Apply(entry.Command.Span, new ApplyContext(entry.Index, LastLogTimeMs));
        Sessions.Complete(entry.ClientId, entry.RequestSeq, result);
        return result;
    }

    /// <summary>What a client is told when its session expired: the write may or may not have been applied before.</summary>
    public static byte[] SessionExpiredText(long seq) =>
        System.Text.Encoding.UTF8.GetBytes($"session expired: the outcome of request {seq} is unknown");

    /// <summary>What the primary makes of a client's write before logging it: new, a retry of one applied, or forgotten.</summary>
    public DedupLookup LookupWrite(ulong clientId, long seq, out ReadOnlyMemory<byte> result) =>
        _deduplication.Judge(Sessions.Lookup(clientId, seq, out result), clientId, seq);

    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var header = writer.GetSpan(16);
        BinaryPrimitives.WriteInt64LittleEndian(header, AppliedIndex);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], LastLogTimeMs);
        writer.Advance(16);
        Sessions.WriteSnapshot(writer);
        Machine.WriteSnapshot(writer);
    }

    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        if (snapshot.Length < 16)
        {
            throw new ProtocolException("snapshot is shorter than its header");
        }

        AppliedIndex = BinaryPrimitives.ReadInt64LittleEndian(snapshot);
        LastLogTimeMs = BinaryPrimitives.ReadInt64LittleEndian(snapshot[8..]);
        var used = Sessions.Restore(snapshot[16..]);
        Machine.Restore(snapshot[(16 + used)..]);
    }

    /// <summary>The snapshot as one array (comparisons in tests and the simulator).</summary>
    public byte[] SnapshotBytes()
    {
        var buffer = new ArrayBufferWriter<byte>();
        WriteSnapshot(buffer);
        return buffer.WrittenSpan.ToArray();
    }
}

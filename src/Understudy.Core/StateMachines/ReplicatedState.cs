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
    {
        Machine = machine;
        Sessions = new ClientSessions(maxSessions);
        _deduplication = deduplication ?? TableDeduplicationRule.Instance;
    }

    public IStateMachine Machine { get; }

    public ClientSessions Sessions { get; }

    /// <summary>Index of the last entry applied.</summary>
    public long AppliedIndex { get; private set; }

    /// <summary>Applies the next committed entry; returns the result owed to the client that sent it.</summary>
    public ReadOnlyMemory<byte> Apply(in LogEntry entry)
    {
        if (entry.Index != AppliedIndex + 1)
        {
            throw new InvalidOperationException($"entries must be applied in order: applied {AppliedIndex}, got {entry.Index}");
        }

        AppliedIndex = entry.Index;
        if (entry.Kind != EntryKind.Command)
        {
            return ReadOnlyMemory<byte>.Empty;
        }

        if (!Sessions.TryBegin(entry.ClientId, entry.RequestSeq, entry.FirstIncomplete, entry.Index, out var previous)
            && _deduplication.Judge(DedupLookup.Applied, entry.ClientId, entry.RequestSeq) != DedupLookup.New)
        {
            return previous;
        }

        var result = Machine.Apply(entry.Command.Span, new ApplyContext(entry.Index, 0));
        Sessions.Complete(entry.ClientId, entry.RequestSeq, result);
        return result;
    }

    /// <summary>What the primary makes of a client's write before logging it: new, a retry of one applied, or forgotten.</summary>
    public DedupLookup LookupWrite(ulong clientId, long seq, out ReadOnlyMemory<byte> result) =>
        _deduplication.Judge(Sessions.Lookup(clientId, seq, out result), clientId, seq);

    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var header = writer.GetSpan(8);
        BinaryPrimitives.WriteInt64LittleEndian(header, AppliedIndex);
        writer.Advance(8);
        Sessions.WriteSnapshot(writer);
        Machine.WriteSnapshot(writer);
    }

    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        if (snapshot.Length < 8)
        {
            throw new ProtocolException("snapshot is shorter than its header");
        }

        AppliedIndex = BinaryPrimitives.ReadInt64LittleEndian(snapshot);
        var used = Sessions.Restore(snapshot[8..]);
        Machine.Restore(snapshot[(8 + used)..]);
    }

    /// <summary>The snapshot as one array (comparisons in tests and the simulator).</summary>
    public byte[] SnapshotBytes()
    {
        var buffer = new ArrayBufferWriter<byte>();
        WriteSnapshot(buffer);
        return buffer.WrittenSpan.ToArray();
    }
}

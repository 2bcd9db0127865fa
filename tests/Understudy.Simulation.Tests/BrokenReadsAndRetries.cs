using System.Buffers;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Simulation.Tests;

/// <summary>A backup answers a read with its own state, which may lag the primary's acknowledged writes.</summary>
internal sealed class BackupServesReadsRule : IReadRule
{
    public ReadDecision Decide(in ReadView view) =>
        view.Role == ServerRole.Backup ? ReadDecision.Serve : LeasedPrimaryReadRule.Instance.Decide(view);
}

/// <summary>
/// A primary that does not check its lease before a read: cut off from the monitor, it goes on answering reads after
/// another server has been promoted and has acknowledged writes it lacks.
/// </summary>
internal sealed class IgnoresLeaseForReadsRule : IReadRule
{
    public ReadDecision Decide(in ReadView view) =>
        LeasedPrimaryReadRule.Instance.Decide(view with { HasLease = true });
}

/// <summary>
/// The deduplication table ignored: a write retried after its first attempt was applied (its answer lost in a
/// failover) is logged and applied again, so a compare-and-set or an increment takes effect twice.
/// </summary>
internal sealed class IgnoresDeduplicationRule : IDeduplicationRule
{
    public DedupLookup Judge(DedupLookup found, ulong clientId, long seq) => found == DedupLookup.Forgotten ? found : DedupLookup.New;
}

/// <summary>
/// Broken: a key-value store whose concurrent queries answer from a view published one write late, as if the loop
/// published what it applied after acknowledging it. A get off the loop then misses the write just acknowledged.
/// </summary>
internal sealed class PublishesAfterAcknowledgingStore : IStateMachine, IConcurrentQueries
{
    private readonly KeyValueStore _live = new();
    private readonly KeyValueStore _published = new();
    private (byte[] Command, ApplyContext Context)? _held;

    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context)
    {
        if (_held is { } held)
        {
            _published.Apply(held.Command, held.Context);
        }

        _held = (command.ToArray(), context);
        return _live.Apply(command, context);
    }

    public ReadOnlyMemory<byte> QueryConcurrently(ReadOnlySpan<byte> query) => _published.Query(query);

    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query) => _live.Query(query);

    public string? Validate(ReadOnlySpan<byte> command) => _live.Validate(command);

    public void WriteSnapshot(IBufferWriter<byte> writer) => _live.WriteSnapshot(writer);

    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        _live.Restore(snapshot);
        _published.Restore(snapshot);
        _held = null;
    }
}

using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
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

using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>Why the monitor proposes a new configuration.</summary>
internal enum ProposalPurpose
{
    /// <summary>The first configuration: the cluster forms with its first primary.</summary>
    Bootstrap,

    /// <summary>A new epoch with a new primary (failover, switchover or forced promotion).</summary>
    Promotion,

    /// <summary>The primary asked to add or remove an in-sync member.</summary>
    InSyncChange,

    /// <summary>A member restarted without fsync=always and leaves the in-sync set until it catches up.</summary>
    ResyncRemoval,

    /// <summary>A server joins, or its priority changed.</summary>
    Membership,
}

/// <summary>A compare-and-set of the configuration: <see cref="Next"/> replaces version <see cref="ExpectedVersion"/>.</summary>
internal sealed record ConfigProposal(ProposalPurpose Purpose, long ExpectedVersion, ClusterConfig Next, NodeAddress Subject, long StartedAt)
{
    /// <summary>The primary's request this proposal answers (<see cref="ProposalPurpose.InSyncChange"/> only).</summary>
    public InSyncChange? InSyncRequest { get; init; }

    /// <summary>Why the new primary is promoted, as events print it.</summary>
    public string Reason { get; init; } = string.Empty;

    public NodeAddress OldPrimary { get; init; } = NodeAddress.None;

    /// <summary>When the failure that led to this promotion was detected, if one did.</summary>
    public long? DetectedAt { get; init; }

    /// <summary>Whether storing it makes a new primary (and so no lease may be granted meanwhile).</summary>
    public bool NamesNewPrimary => Purpose is ProposalPurpose.Bootstrap or ProposalPurpose.Promotion;
}

/// <summary>
/// The configuration store's one writer in this monitor: at most one proposal is in flight, so every
/// change is decided against the configuration the store last confirmed.
/// </summary>
internal sealed class ConfigProposer(IMonitorEnvironment environment)
{
    /// <summary>The proposal the store has not answered yet, or null.</summary>
    public ConfigProposal? InFlight { get; private set; }

    public void Propose(ConfigProposal proposal)
    {
        InFlight = proposal;
        environment.ProposeConfig(proposal.ExpectedVersion, proposal.Next);
    }

    /// <summary>The store answered: the proposal it answered (null if none was in flight), no longer in flight.</summary>
    public ConfigProposal? Settle()
    {
        var proposal = InFlight;
        InFlight = null;
        return proposal;
    }
}

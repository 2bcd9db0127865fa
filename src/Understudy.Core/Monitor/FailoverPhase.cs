namespace Understudy.Core.Monitor;

/// <summary>The monitor's failover state machine: where it stands with the current primary.</summary>
/// <remarks>
/// A primary that misses heartbeats is judged failed at once (<see cref="FailureCause.MissedHeartbeats"/>);
/// what keeps it from being replaced while it may only be slow is its lease, so the phase that follows
/// <see cref="Stable"/> is <see cref="AwaitingLeaseExpiry"/>: there is no separate "suspected" phase.
/// </remarks>
public enum FailoverPhase
{
    /// <summary>No configuration yet: waiting for servers to form the cluster.</summary>
    Forming,

    /// <summary>The primary is alive and holds its lease.</summary>
    Stable,

    /// <summary>
    /// The primary is judged failed (or an operator forces a promotion), but its lease may still run:
    /// nobody is promoted before it surely expires.
    /// </summary>
    AwaitingLeaseExpiry,

    /// <summary>A new configuration naming the next primary is being stored.</summary>
    Promoting,

    /// <summary>The primary failed and no alive in-sync server can take over: waiting (nothing acknowledged is lost).</summary>
    NoCandidate,

    /// <summary>A planned handover is under way.</summary>
    Switchover,
}

/// <summary>Why the monitor judges the primary of the current epoch failed.</summary>
public enum FailureCause
{
    /// <summary>The configuration names no primary.</summary>
    NoPrimary,

    /// <summary>The primary's server reports itself a backup in the epoch it was to lead.</summary>
    PrimaryRestarted,

    /// <summary>Its heartbeat connection dropped and its port refused a probe.</summary>
    PrimaryCrashed,

    /// <summary>No heartbeat for the failure timeout: it may only be slow or cut off.</summary>
    MissedHeartbeats,

    /// <summary>This monitor has never heard of the server the configuration names.</summary>
    UnknownToMonitor,
}

/// <summary>What a <see cref="FailureCause"/> proves and how it reads in events.</summary>
public static class FailureCauses
{
    /// <summary>
    /// Whether the primary surely serves nothing, so its lease need not be waited out. A primary that only
    /// missed heartbeats, or that this monitor does not know, may still be serving under its lease.
    /// </summary>
    public static bool ProvesDeath(this FailureCause cause) =>
        cause is FailureCause.NoPrimary or FailureCause.PrimaryRestarted or FailureCause.PrimaryCrashed;

    /// <summary>The text events and promotion reasons carry (kept as it always read: tools and people parse it).</summary>
    public static string Describe(this FailureCause cause) => cause switch
    {
        FailureCause.NoPrimary => "no primary",
        FailureCause.PrimaryRestarted => "primary restarted",
        FailureCause.PrimaryCrashed => "primary crashed (connection reset, port refused)",
        FailureCause.MissedHeartbeats => "primary missed heartbeats",
        FailureCause.UnknownToMonitor => "primary unknown to this monitor",
        _ => throw new ArgumentOutOfRangeException(nameof(cause), cause, null),
    };
}

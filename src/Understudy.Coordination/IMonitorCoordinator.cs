using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Coordination;

/// <summary>
/// What one monitor process knows about its group: who is active, in which term, until when this monitor's own
/// leadership is confirmed by a quorum, and the committed cluster configuration. Implementations: a group of one
/// (<see cref="SingleMonitorCoordinator"/>, a local file), a Raft group (DotNext), or etcd.
/// </summary>
/// <remarks>
/// <para>Thread-safety: every member may be called from any thread; events may be raised on any thread, and the
/// host marshals them onto the monitor's loop.</para>
/// <para>Lease safety rests on two promises. (1) <see cref="Leadership.ConfirmedUntil"/> is a point on this
/// process's monotonic clock (<see cref="TimeProvider.GetTimestamp"/> of <see cref="TimeProvider.System"/>) before
/// which no other monitor can become active, allowing for the clock drift the implementation assumes. (2)
/// <see cref="CompareAndSetAsync"/> commits only through the quorum (or the single file), with the same
/// compare-and-set semantics as <see cref="IConfigurationStore"/>.</para>
/// </remarks>
public interface IMonitorCoordinator : IAsyncDisposable
{
    /// <summary>Joins the group (or opens the file). Completes once the coordinator can answer <see cref="LoadAsync"/>.</summary>
    ValueTask StartAsync(CancellationToken cancellationToken);

    /// <summary>The current view; cheap, and safe from any thread.</summary>
    Leadership Leadership { get; }

    /// <summary>Raised when the active monitor, the term, or whether this monitor is active changes.</summary>
    event Action<Leadership>? LeadershipChanged;

    /// <summary>Raised when a newer committed configuration is observed (how followers keep their copy).</summary>
    event Action<ClusterConfig>? ConfigChanged;

    /// <summary>The latest committed configuration (<see cref="ClusterConfig.Initial"/> when none).</summary>
    ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the configuration if its version is still <paramref name="expectedVersion"/>, durably, through
    /// the quorum. Throws <see cref="NotActiveMonitorException"/> when this monitor is not the active one.
    /// </summary>
    ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken);

    /// <summary>The group as this monitor sees it, itself included.</summary>
    IReadOnlyList<MonitorPeer> Peers { get; }
}

/// <summary>
/// Who leads the monitor group, seen from one monitor.
/// </summary>
/// <param name="Term">The coordinator's leader term (Raft term; etcd: the election key's create revision). Never decreases.</param>
/// <param name="IsActive">Whether this monitor is the active one.</param>
/// <param name="Active">The active monitor's server-facing address (heartbeat port), or <see cref="NodeAddress.None"/> when unknown.</param>
/// <param name="ConfirmedUntil">Only when <paramref name="IsActive"/>: the monotonic timestamp (Stopwatch ticks) before which no
/// other monitor can become active. A monitor grants leases only while now is before it.</param>
/// <param name="HasQuorum">Whether this monitor currently reaches a quorum of its group (shown on /health and the dashboard).</param>
public readonly record struct Leadership(long Term, bool IsActive, NodeAddress Active, long ConfirmedUntil, bool HasQuorum)
{
    /// <summary>Nobody known to be active yet.</summary>
    public static Leadership Unknown => new(0, false, NodeAddress.None, 0, false);
}

/// <summary>How one member of the monitor group looks from here.</summary>
public enum MonitorPeerState
{
    /// <summary>Reachable and up to date.</summary>
    Up,

    /// <summary>Reachable but behind on the configuration log.</summary>
    Lagging,

    /// <summary>Not heard from recently.</summary>
    Unreachable,
}

/// <summary>A member of the monitor group.</summary>
/// <param name="Address">Its server-facing (heartbeat) address, which names it.</param>
/// <param name="IsActive">Whether it is the active monitor.</param>
/// <param name="State">Reachability as seen from this monitor.</param>
/// <param name="IsSelf">Whether it is this monitor.</param>
public readonly record struct MonitorPeer(NodeAddress Address, bool IsActive, MonitorPeerState State, bool IsSelf);

/// <summary>A configuration change was asked of a monitor that is not the active one.</summary>
public sealed class NotActiveMonitorException(NodeAddress active)
    : InvalidOperationException(active == NodeAddress.None ? "this monitor is not the active one, and no active monitor is known" : $"this monitor is not the active one; the active monitor is {active}")
{
    /// <summary>The active monitor, or <see cref="NodeAddress.None"/>.</summary>
    public NodeAddress Active { get; } = active;
}

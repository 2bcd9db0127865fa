using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// Who leads the monitor group, as this monitor's coordinator sees it: what the host hands
/// <see cref="MonitorNode.OnLeadership"/>.
/// </summary>
/// <param name="Term">The coordinator's leader term; never decreases (a view with a lower term than one already seen is ignored).</param>
/// <param name="IsActive">Whether this monitor is the active one: only it grants leases, proposes configurations and probes.</param>
/// <param name="Active">The active monitor's server-facing address, or <see cref="NodeAddress.None"/> when unknown
/// (named in refusals of operator commands on a follower).</param>
/// <param name="ConfirmedUntil">Only when active: the monotonic timestamp (the node's <see cref="TimeProvider.GetTimestamp"/>)
/// before which the coordinator promises no other monitor becomes active. Leases are granted only before it.</param>
public readonly record struct MonitorLeadership(long Term, bool IsActive, NodeAddress Active, long ConfirmedUntil)
{
    /// <summary>A group of one: active forever in term 1 (what a <see cref="MonitorNode"/> without a coordinator assumes).</summary>
    public static MonitorLeadership GroupOfOne => new(1, true, NodeAddress.None, long.MaxValue);

    /// <summary>Whether this monitor is active and its leadership confirmed at <paramref name="now"/>.</summary>
    public bool IsConfirmedAt(long now) => IsActive && now < ConfirmedUntil;
}

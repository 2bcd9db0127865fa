namespace Understudy.Core.Monitor;

/// <summary>What the lease rule sees when the monitor would grant (or renew) the primary's lease at <see cref="Now"/>.</summary>
/// <param name="Now">The monitor's monotonic timestamp.</param>
/// <param name="Leadership">The monitor group's view: active or not, and until when leadership is confirmed.</param>
/// <param name="LeaseTicks">The length of the lease to grant, in timestamp ticks.</param>
public readonly record struct LeaseGrantView(long Now, MonitorLeadership Leadership, long LeaseTicks);

/// <summary>What the lease rule sees when this monitor becomes active (or starts active).</summary>
/// <param name="ActiveSince">The monotonic timestamp at which it became active.</param>
/// <param name="Term">The term it became active in.</param>
/// <param name="LeaseTicks">The lease duration every monitor of the group grants, in timestamp ticks.</param>
/// <param name="MaxClockDriftTicks">How far clocks may drift apart over a lease (<see cref="MonitorOptions.MaxClockDrift"/>), in ticks.</param>
public readonly record struct LeaseWaitView(long ActiveSince, long Term, long LeaseTicks, long MaxClockDriftTicks);

/// <summary>
/// The two decisions that keep leases safe across a change of active monitor, in one place so tests can swap in a
/// broken rule and watch the simulator catch it (as with <see cref="IPromotionRule"/>). The safe rule is
/// <see cref="ConfirmedLeadershipLeaseRule"/>; docs/ARCHITECTURE.md ("The monitor group and lease safety") has the argument.
/// </summary>
public interface IMonitorLeaseRule
{
    /// <summary>Whether the monitor may grant or renew a lease now (the primary's eligibility is checked elsewhere).</summary>
    bool MayGrant(in LeaseGrantView view);

    /// <summary>
    /// The monotonic timestamp before which a newly active monitor must not promote anyone but the configured primary
    /// (unless that primary is known dead): after it, no lease any earlier active monitor granted can still run.
    /// </summary>
    long OthersMayBePromotedAt(in LeaseWaitView view);
}

/// <summary>
/// The safe rule. Grant only while active and <c>now &lt; ConfirmedUntil</c>, so every lease ends before
/// <c>ConfirmedUntil + LeaseDuration</c>. A monitor that became active at <c>t</c> waits until
/// <c>t + LeaseDuration + MaxClockDrift</c> before promoting another server: the coordinator lets nobody become active
/// before the previous active monitor's <c>ConfirmedUntil</c>, so every lease that monitor granted has run out by then.
/// </summary>
public sealed class ConfirmedLeadershipLeaseRule : IMonitorLeaseRule
{
    public static readonly ConfirmedLeadershipLeaseRule Instance = new();

    public bool MayGrant(in LeaseGrantView view) => view.Leadership.IsConfirmedAt(view.Now);

    public long OthersMayBePromotedAt(in LeaseWaitView view) =>
        SaturatingAdd(view.ActiveSince, view.LeaseTicks + view.MaxClockDriftTicks);

    private static long SaturatingAdd(long at, long ticks) => at > long.MaxValue - ticks ? long.MaxValue : at + ticks;
}

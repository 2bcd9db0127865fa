using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// The lease the monitor grants the primary in heartbeat replies, and when the last one granted surely runs
/// out on the monitor's own clock. Nobody else is promoted before that instant unless the primary is known
/// dead or has promised to step down: this is what keeps two primaries from serving at once.
/// </summary>
/// <remarks>
/// <para>The rule across a group of monitors (enforced by <see cref="MonitorNode"/> through <see cref="IMonitorLeaseRule"/>,
/// checked by <see cref="MonitorNode.CheckInvariants"/>): a lease of length <c>L</c> is granted at <c>now</c> only while
/// this monitor is active and <c>now &lt; ConfirmedUntil</c>. So every lease this monitor grants ends before
/// <c>ConfirmedUntil + L</c> on its clock: it outlives the confirmed leadership by less than one lease duration, and
/// never more. The server dates its lease from its own heartbeat's send time, which precedes the grant, so on
/// the server it ends earlier still (up to clock drift).</para>
/// <para>A newly active monitor cannot know what its predecessors granted: <see cref="AwaitEarlierMonitors"/> makes it
/// assume a lease running until <c>becameActive + L + MaxClockDrift</c>, after which none can (the coordinator lets no
/// monitor become active before its predecessor's <c>ConfirmedUntil</c>).</para>
/// </remarks>
internal sealed class LeaseKeeper
{
    private readonly TimeProvider _time;
    private readonly long _durationTicks;

    /// <summary>A restarted monitor cannot know what lease it granted last: assume a full one from <paramref name="startedAt"/>.</summary>
    public LeaseKeeper(TimeSpan duration, TimeProvider time, long startedAt)
    {
        _time = time;
        _durationTicks = (long)(duration.TotalSeconds * time.TimestampFrequency);
        DurationMs = (int)duration.TotalMilliseconds;
        SurelyExpiresAt = startedAt + _durationTicks;
    }

    /// <summary>The length of every lease granted, in milliseconds (what heartbeat replies and pushes carry).</summary>
    public int DurationMs { get; }

    /// <summary>The length of every lease granted, in timestamp ticks.</summary>
    public long DurationTicks => _durationTicks;

    /// <summary>Monotonic timestamp after which no lease granted so far (by this monitor or, see <see cref="InheritedUntil"/>, earlier ones) can still run.</summary>
    public long SurelyExpiresAt { get; private set; }

    /// <summary>Until when leases granted by earlier active monitors may run, as assumed when this one became active.</summary>
    public long InheritedUntil { get; private set; } = long.MinValue;

    /// <summary>Monotonic timestamp of the last grant, or <see cref="long.MinValue"/> before any.</summary>
    public long LastGrantedAt { get; private set; } = long.MinValue;

    /// <summary>The confirmed-leadership deadline in force at the last grant (what the grant was checked against).</summary>
    public long LastGrantConfirmedUntil { get; private set; } = long.MinValue;

    /// <summary>
    /// The server the running lease belongs to: the last one granted, or the configured primary when this monitor
    /// started or became active (the server earlier monitors granted to), or <see cref="NodeAddress.None"/>.
    /// </summary>
    public NodeAddress Holder { get; private set; } = NodeAddress.None;

    /// <summary>How many leases this monitor has granted (renewals included).</summary>
    public long GrantCount { get; private set; }

    /// <summary>Whether a lease granted so far may still run at <paramref name="now"/>.</summary>
    public bool MayStillRun(long now) => now < SurelyExpiresAt;

    /// <summary>Milliseconds until the last lease surely runs out (0 if it has).</summary>
    public double RemainingMs(long now) => Math.Max(0, (SurelyExpiresAt - now) * 1000.0 / _time.TimestampFrequency);

    /// <summary>
    /// Whether this heartbeat may be answered with a lease: it comes from the primary of the current epoch
    /// still serving as primary, and the failover state machine lets the primary keep serving
    /// (<paramref name="failoverAllows"/>: nothing is replacing it).
    /// </summary>
    public static bool MayGrant(in Heartbeat heartbeat, ClusterConfig config, bool failoverAllows) =>
        config.Epoch > 0 &&
        heartbeat.From == config.Primary &&
        heartbeat.Epoch == config.Epoch &&
        heartbeat.Role == ServerRole.Primary &&
        failoverAllows;

    /// <summary>
    /// Whether <paramref name="server"/> may be granted a lease as far as other holders go: it holds the running lease,
    /// or nobody does, or the holder's lease has surely run out. This is what stops a configuration that changed the
    /// primary without this monitor's promotion (a write of an earlier term committing late) from putting two leases out.
    /// </summary>
    public bool MayGrantTo(NodeAddress server, long now) => server == Holder || Holder.IsNone || !MayStillRun(now);

    /// <summary>The configured primary holds whatever lease is running (at start, and on becoming active).</summary>
    public void AssumeHolder(NodeAddress primary) => Holder = primary;

    /// <summary>A lease granted to <paramref name="server"/> at <paramref name="now"/> while leadership is confirmed until <paramref name="confirmedUntil"/>: the expiry only ever moves later.</summary>
    public void Grant(NodeAddress server, long now, long confirmedUntil)
    {
        Holder = server;
        SurelyExpiresAt = Math.Max(SurelyExpiresAt, now + _durationTicks);
        LastGrantedAt = now;
        LastGrantConfirmedUntil = confirmedUntil;
        GrantCount++;
    }

    /// <summary>
    /// A new primary was stored: from now on only its lease counts, so the expiry restarts from <paramref name="now"/>
    /// rather than keeping the old primary's (never before what earlier monitors may have granted, though).
    /// </summary>
    public void StartTerm(NodeAddress primary, long now)
    {
        Holder = primary;
        SurelyExpiresAt = Math.Max(now + _durationTicks, InheritedUntil);
    }

    /// <summary>This monitor became active: leases its predecessors granted may run until <paramref name="until"/>.</summary>
    public void AwaitEarlierMonitors(long until)
    {
        InheritedUntil = until;
        SurelyExpiresAt = Math.Max(SurelyExpiresAt, until);
    }
}

using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// The lease the monitor grants the primary in heartbeat replies, and when the last one granted surely runs
/// out on the monitor's own clock. Nobody else is promoted before that instant unless the primary is known
/// dead or has promised to step down: this is what keeps two primaries from serving at once.
/// </summary>
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

    /// <summary>Monotonic timestamp after which no lease granted so far can still run.</summary>
    public long SurelyExpiresAt { get; private set; }

    /// <summary>Monotonic timestamp of the last grant, or <see cref="long.MinValue"/> before any.</summary>
    public long LastGrantedAt { get; private set; } = long.MinValue;

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

    /// <summary>A lease granted at <paramref name="now"/>: the expiry only ever moves later.</summary>
    public void Grant(long now)
    {
        SurelyExpiresAt = Math.Max(SurelyExpiresAt, now + _durationTicks);
        LastGrantedAt = now;
    }

    /// <summary>
    /// A new primary is pushed a full lease with its configuration: from now on only its lease counts, so the
    /// expiry restarts from <paramref name="now"/> rather than keeping the old primary's.
    /// </summary>
    public void StartTerm(long now)
    {
        SurelyExpiresAt = now + _durationTicks;
        LastGrantedAt = now;
    }
}

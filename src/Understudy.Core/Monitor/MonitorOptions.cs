using Understudy.Core.FailureDetection;

namespace Understudy.Core.Monitor;

/// <summary>How the monitor judges servers, grants leases and promotes. Validated at start.</summary>
public sealed record MonitorOptions
{
    /// <summary>The heartbeat interval servers use (the phi detector's starting guess).</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>No heartbeat for this long and a server is suspected (the slow path: hangs and partitions).</summary>
    public TimeSpan FailureTimeout { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>How long each lease granted to the primary runs; no other server is promoted before it has surely expired.</summary>
    /// <remarks>
    /// 800 ms, not 500: the lease is what a change of active monitor must fit in, or clients' writes stall (the
    /// primary trusts 90 % of it from its last renewed heartbeat). A monitor failover on Raft is the survivors'
    /// election (up to the last-ranked member's window, 230 ms), in a third to a half of the rounds a split vote and
    /// a second election (150–240 ms more), the new leader's first commit (60–216 ms on a loaded disk: DotNext's
    /// first round misses and each round waits for fsyncs) and its first confirmation; that reached 470–850 ms in
    /// 8 or 9 of 20 kill-monitor rounds, past the 450 ms a 500 ms lease leaves. The cost is paid
    /// after a primary hangs (a pause, not a crash): the new primary is promoted only once the lease has surely run
    /// out, about 300 ms later than with 500 (docs/BENCHMARKS.md, "Monitor failover, round 17").
    /// </remarks>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromMilliseconds(800);

    /// <summary>
    /// How far the clocks of monitors and servers may drift apart over one lease. A newly active monitor waits
    /// <see cref="LeaseDuration"/> plus this before promoting anyone but the configured primary, so every lease an
    /// earlier active monitor granted has surely run out.
    /// </summary>
    public TimeSpan MaxClockDrift { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// While a server's heartbeat connection stays dropped and its port has not refused, how long to wait
    /// before probing it again (a killed process may still hold its port open for a moment).
    /// </summary>
    public TimeSpan ReprobeInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// A gap this long between the monitor's own ticks means the monitor itself stalled; it then waits two
    /// heartbeat intervals before suspecting anyone, so heartbeats queued during its stall are read first.
    /// </summary>
    public TimeSpan SelfStallThreshold { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>With an empty configuration, how long to wait after the first server appears so others can register.</summary>
    public TimeSpan BootstrapDelay { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>How long a planned switchover may take before it is called off.</summary>
    public TimeSpan SwitchoverTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Events kept for /events and the dashboard.</summary>
    public int MaxEvents { get; init; } = 2000;

    /// <summary>Phi-accrual instead of a fixed timeout; the threshold when used.</summary>
    public double? PhiThreshold { get; init; }

    /// <summary>Makes the failure detector for each member.</summary>
    public FailureDetectorFactory CreateDetector()
    {
        if (PhiThreshold is { } phi)
        {
            var interval = HeartbeatInterval;
            var pause = FailureTimeout - HeartbeatInterval;
            return frequency => new PhiAccrualFailureDetector(phi, 100, TimeSpan.FromMilliseconds(Math.Max(1, interval.TotalMilliseconds / 4)), pause > TimeSpan.Zero ? pause : TimeSpan.Zero, interval, frequency);
        }

        var timeout = FailureTimeout;
        return frequency => new TimeoutFailureDetector(timeout, frequency);
    }

    public void Validate()
    {
        if (HeartbeatInterval <= TimeSpan.Zero || FailureTimeout <= TimeSpan.Zero || LeaseDuration <= TimeSpan.Zero)
        {
            throw new ArgumentException("heartbeat interval, failure timeout and lease duration must be positive");
        }

        if (ReprobeInterval <= TimeSpan.Zero || SelfStallThreshold <= TimeSpan.Zero)
        {
            throw new ArgumentException("the re-probe interval and the self-stall threshold must be positive");
        }

        if (FailureTimeout <= HeartbeatInterval)
        {
            throw new ArgumentException($"failure timeout ({FailureTimeout.TotalMilliseconds} ms) must be longer than the heartbeat interval ({HeartbeatInterval.TotalMilliseconds} ms)");
        }

        if (LeaseDuration <= HeartbeatInterval * 2)
        {
            throw new ArgumentException($"lease duration ({LeaseDuration.TotalMilliseconds} ms) must be more than two heartbeat intervals, or a healthy primary loses its lease");
        }

        if (MaxClockDrift < TimeSpan.Zero || MaxClockDrift >= LeaseDuration)
        {
            throw new ArgumentException($"max clock drift ({MaxClockDrift.TotalMilliseconds} ms) must be at least 0 and less than the lease duration ({LeaseDuration.TotalMilliseconds} ms)");
        }

        if (PhiThreshold is <= 0)
        {
            throw new ArgumentException("phi threshold must be positive");
        }
    }
}

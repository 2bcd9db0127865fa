using Understudy.Core.FailureDetection;

namespace Understudy.Core.Tests.FailureDetection;

/// <summary>The slow path of failure detection: when silence becomes suspicion. Timestamps here are milliseconds.</summary>
public class FailureDetectorTests
{
    private const long Frequency = 1000;

    [Fact]
    public void Timeout_detector_suspects_after_the_timeout_and_not_before()
    {
        var d = new TimeoutFailureDetector(TimeSpan.FromMilliseconds(300), Frequency);
        Assert.False(d.IsSuspected(5_000)); // never heard from: nothing to judge yet

        d.Heartbeat(1_000);

        Assert.False(d.IsSuspected(1_000));
        Assert.False(d.IsSuspected(1_300));
        Assert.True(d.IsSuspected(1_301));
    }

    [Fact]
    public void Timeout_detector_is_reset_by_a_heartbeat_and_not_moved_back_by_a_late_one()
    {
        var d = new TimeoutFailureDetector(TimeSpan.FromMilliseconds(300), Frequency);
        d.Heartbeat(1_000);
        Assert.True(d.IsSuspected(1_400));

        d.Heartbeat(2_000);
        d.Heartbeat(1_500); // delivered late

        Assert.False(d.IsSuspected(2_300));
        Assert.True(d.IsSuspected(2_301));
    }

    [Fact]
    public void Phi_accrual_rises_with_silence()
    {
        var d = Phi(threshold: 8);
        var last = Feed(d, 0, Enumerable.Repeat(50L, 200));

        var phis = new[] { 25L, 50, 100, 150, 400 }.Select(silence => d.Suspicion(last + silence)).ToArray();

        for (var i = 1; i < phis.Length; i++)
        {
            Assert.True(phis[i] > phis[i - 1], $"phi must rise with silence: {string.Join(", ", phis)}");
        }

        Assert.False(d.IsSuspected(last + 50)); // one ordinary interval
        Assert.True(d.IsSuspected(last + 400));
    }

    [Fact]
    public void Phi_accrual_tolerates_a_jittery_but_regular_stream()
    {
        var random = new Random(7);
        var intervals = Enumerable.Range(0, 500).Select(_ => (long)random.Next(20, 81)).ToList();
        var jittery = Phi(threshold: 5);
        var steady = Phi(threshold: 5);

        // Never suspected while heartbeats keep coming, just before each one arrives.
        var t = 0L;
        jittery.Heartbeat(t);
        foreach (var interval in intervals)
        {
            Assert.False(jittery.IsSuspected(t + interval - 1), $"suspected {interval - 1} ms into an ordinary gap");
            t += interval;
            jittery.Heartbeat(t);
        }

        var steadyLast = Feed(steady, 0, Enumerable.Repeat(50L, 500));

        // The same 100 ms of silence is more alarming on a steady link than on a jittery one.
        Assert.True(jittery.Suspicion(t + 100) < steady.Suspicion(steadyLast + 100));
        Assert.False(jittery.IsSuspected(t + 100));
        Assert.True(steady.IsSuspected(steadyLast + 100));

        // And a jittery member that really stops is still suspected.
        Assert.True(jittery.IsSuspected(t + 1_000));
    }

    [Fact]
    public void Monitor_options_choose_phi_accrual_only_when_a_threshold_is_set()
    {
        Assert.IsType<TimeoutFailureDetector>(new MonitorOptions().CreateDetector()(Frequency));
        Assert.IsType<PhiAccrualFailureDetector>(new MonitorOptions { PhiThreshold = 8 }.CreateDetector()(Frequency));
    }

    private static PhiAccrualFailureDetector Phi(double threshold) =>
        new(threshold, 100, TimeSpan.FromMilliseconds(10), TimeSpan.Zero, TimeSpan.FromMilliseconds(50), Frequency);

    private static long Feed(IFailureDetector d, long start, IEnumerable<long> intervals)
    {
        var t = start;
        d.Heartbeat(t);
        foreach (var interval in intervals)
        {
            t += interval;
            d.Heartbeat(t);
        }

        return t;
    }
}

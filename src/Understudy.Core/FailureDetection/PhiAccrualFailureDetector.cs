namespace Understudy.Core.FailureDetection;

/// <summary>
/// The phi-accrual detector (Hayashibara et al., as in Akka and Cassandra): phi grows with the
/// silence measured against the observed distribution of heartbeat intervals, so a member on a
/// jittery link is given more slack than one on a steady link. Suspected once phi passes the threshold.
/// </summary>
public sealed class PhiAccrualFailureDetector : IFailureDetector
{
    private readonly double _threshold;
    private readonly double _minStdDevTicks;
    private readonly double _acceptablePauseTicks;
    private readonly double[] _intervals;
    private readonly long _frequency;
    private int _count;
    private int _next;
    private long _last = long.MinValue;

    public PhiAccrualFailureDetector(double threshold, int windowSize, TimeSpan minStdDev, TimeSpan acceptablePause, TimeSpan firstInterval, long timestampFrequency)
    {
        if (threshold <= 0 || windowSize < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(threshold), "phi threshold must be positive and the window at least 2");
        }

        _threshold = threshold;
        _frequency = timestampFrequency;
        _minStdDevTicks = minStdDev.TotalSeconds * timestampFrequency;
        _acceptablePauseTicks = acceptablePause.TotalSeconds * timestampFrequency;
        _intervals = new double[windowSize];

        // Seed the window as Akka does: the expected interval with a generous spread.
        var first = firstInterval.TotalSeconds * timestampFrequency;
        Add(first - (first / 4));
        Add(first + (first / 4));
    }

    public void Heartbeat(long timestamp)
    {
        if (_last != long.MinValue && timestamp > _last)
        {
            Add(timestamp - _last);
        }

        _last = Math.Max(_last, timestamp);
    }

    public bool IsSuspected(long now) => Suspicion(now) > _threshold;

    public double Suspicion(long now)
    {
        if (_last == long.MinValue)
        {
            return 0;
        }

        double mean = 0;
        for (var i = 0; i < _count; i++)
        {
            mean += _intervals[i];
        }

        mean /= _count;
        double variance = 0;
        for (var i = 0; i < _count; i++)
        {
            var d = _intervals[i] - mean;
            variance += d * d;
        }

        var stdDev = Math.Max(Math.Sqrt(variance / _count), _minStdDevTicks);
        var elapsed = now - _last;
        var y = (elapsed - (mean + _acceptablePauseTicks)) / stdDev;

        // Logistic approximation of the normal CDF's tail, as in Akka: phi = -log10(1 - CDF(y)).
        var e = Math.Exp(-y * (1.5976 + (0.070566 * y * y)));
        return elapsed > mean + _acceptablePauseTicks ? -Math.Log10(e / (1.0 + e)) : -Math.Log10(1.0 - (1.0 / (1.0 + e)));
    }

    private void Add(double interval)
    {
        _intervals[_next] = interval;
        _next = (_next + 1) % _intervals.Length;
        _count = Math.Min(_count + 1, _intervals.Length);
    }

    /// <summary>Seconds per timestamp tick, for tests.</summary>
    internal double SecondsPerTick => 1.0 / _frequency;
}

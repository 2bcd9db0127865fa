namespace Understudy.Core.FailureDetection;

/// <summary>Suspects a member once no heartbeat has arrived for a fixed timeout (the default).</summary>
public sealed class TimeoutFailureDetector : IFailureDetector
{
    private readonly long _timeoutTicks;
    private long _last = long.MinValue;

    public TimeoutFailureDetector(TimeSpan timeout, long timestampFrequency)
    {
        if (timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), "the failure timeout must be positive");
        }

        _timeoutTicks = (long)(timeout.TotalSeconds * timestampFrequency);
    }

    public void Heartbeat(long timestamp) => _last = Math.Max(_last, timestamp);

    public bool IsSuspected(long now) => _last != long.MinValue && now - _last > _timeoutTicks;

    public double Suspicion(long now) => _last == long.MinValue ? 0 : (double)(now - _last) / _timeoutTicks;
}

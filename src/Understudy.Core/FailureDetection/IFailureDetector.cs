namespace Understudy.Core.FailureDetection;

/// <summary>
/// Judges one member from its heartbeat arrival times (monotonic timestamps). Implementations keep no
/// clock of their own: the caller passes the time, so the simulator can drive them.
/// </summary>
public interface IFailureDetector
{
    /// <summary>A heartbeat arrived at <paramref name="timestamp"/>.</summary>
    void Heartbeat(long timestamp);

    /// <summary>True when the member should be suspected at <paramref name="now"/>.</summary>
    bool IsSuspected(long now);

    /// <summary>How suspicious the silence is, for display (phi, or elapsed/timeout for the timeout detector).</summary>
    double Suspicion(long now);
}

/// <summary>Makes a detector per member.</summary>
public delegate IFailureDetector FailureDetectorFactory(long timestampFrequency);

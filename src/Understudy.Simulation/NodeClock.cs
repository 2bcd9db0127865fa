namespace Understudy.Simulation;

/// <summary>
/// A node's view of simulated time: its own offset and a small rate drift, so nothing in the protocol
/// can get away with comparing timestamps from two machines or with assuming clocks run at one rate. The wall clock
/// (<see cref="GetUtcNow"/>, which servers stamp into log entries) may be set apart from true time by
/// <paramref name="wallOffsetMicros"/>, as two machines' clocks are.
/// </summary>
internal sealed class NodeClock(SimWorld world, long offsetMicros, double drift, long wallOffsetMicros = 0) : TimeProvider
{
    private static readonly DateTimeOffset Base = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    // After a rate change the clock runs on from where it was: a monotonic clock never jumps, it only runs fast or slow.
    private bool _rateChanged;
    private long _anchorWorld;
    private long _anchorStamp;

    public override long TimestampFrequency => 1_000_000;

    /// <summary>How much faster than true time this clock runs (0.01: 1% fast).</summary>
    public double Drift { get; private set; } = drift;

    public override long GetTimestamp() =>
        _rateChanged
            ? _anchorStamp + (long)((world.Now - _anchorWorld) * (1 + Drift))
            : offsetMicros + (long)(world.Now * (1 + Drift));

    public override DateTimeOffset GetUtcNow() => Base.AddTicks((world.Now + wallOffsetMicros) * 10);

    /// <summary>From now on the clock runs at rate 1 + <paramref name="drift"/>, continuing from its current reading.</summary>
    public void SetDrift(double drift)
    {
        _anchorStamp = GetTimestamp();
        _anchorWorld = world.Now;
        _rateChanged = true;
        Drift = drift;
    }
}

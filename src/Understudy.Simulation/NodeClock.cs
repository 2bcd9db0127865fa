namespace Understudy.Simulation;

/// <summary>
/// A node's view of simulated time: its own offset and a small rate drift, so nothing in the protocol
/// can get away with comparing timestamps from two machines or with assuming clocks run at one rate.
/// </summary>
internal sealed class NodeClock(SimWorld world, long offsetMicros, double drift) : TimeProvider
{
    private static readonly DateTimeOffset Base = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override long TimestampFrequency => 1_000_000;

    public override long GetTimestamp() => offsetMicros + (long)(world.Now * (1 + drift));

    public override DateTimeOffset GetUtcNow() => Base.AddTicks(world.Now * 10);
}

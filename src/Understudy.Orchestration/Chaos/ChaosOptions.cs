namespace Understudy.Orchestration.Chaos;

/// <summary>The fault scenarios, as the original's scripts named them and more.</summary>
public enum ChaosScenario
{
    KillPrimary,
    KillBackup,
    KillPrimaryAndBackup,
    Chain,
    Random,
    KillAll,
    Pause,
    Monitor,
    Partition,
    Mixed,
}

/// <summary>What one chaos run does.</summary>
public sealed record ChaosOptions
{
    public required ChaosScenario Scenario { get; init; }

    public int Faults { get; init; } = 5;

    public int Seed { get; init; }

    public int Clients { get; init; } = 4;

    /// <summary>Share of calls that are reads (counts), to check reads against the one order too.</summary>
    public int ReadPercent { get; init; } = 10;

    public required string RunFolder { get; init; }

    public string Fsync { get; init; } = "always";

    public int Servers { get; init; } = 3;
}

/// <summary>A fault injected: what, when (µs on the history's clock), and whether it caused a promotion.</summary>
public sealed record FaultRecord(string Kind, long Start, long End, string Detail)
{
    public long End { get; set; } = End;

    public string Detail { get; set; } = Detail;
}

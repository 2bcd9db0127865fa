namespace Understudy.Orchestration.Bench;

/// <summary>What one soak run does.</summary>
public sealed record SoakOptions
{
    /// <summary>Writes to send in all, each once.</summary>
    public long Writes { get; init; } = 2_000_000;

    public int Clients { get; init; } = 64;

    /// <summary>Message size in bytes (at least the writer's tag, "sW-N.", is sent).</summary>
    public int Payload { get; init; } = 64;

    public string Fsync { get; init; } = "always";

    /// <summary>UnderstudyClient instances (each one connection to the primary) the writers share.</summary>
    public int Connections { get; init; } = 4;

    /// <summary>Extra flags for every server (--snapshot-every..., small thresholds in tests).</summary>
    public IReadOnlyList<string> ServerArguments { get; init; } = [];

    /// <summary>How long each phase (a backup back in sync, the cluster serving again) may take.</summary>
    public TimeSpan PhaseTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Keep the servers' stores in the run folder after a run that passed (they are deleted by default; a failed run keeps them).</summary>
    public bool KeepData { get; init; }

    public required string RunFolder { get; init; }
}

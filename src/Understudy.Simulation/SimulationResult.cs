using Understudy.Checking;
using Understudy.Checking.Linearizability;

namespace Understudy.Simulation;

/// <summary>What one simulated run did and whether it broke a rule.</summary>
public sealed record SimulationResult
{
    public required int Seed { get; init; }

    public required IReadOnlyList<Violation> Violations { get; init; }

    public required CheckStats Stats { get; init; }

    /// <summary>Faults injected, by kind.</summary>
    public required IReadOnlyDictionary<string, long> Faults { get; init; }

    public required long Events { get; init; }

    public required long SimulatedMs { get; init; }

    public required History History { get; init; }

    /// <summary>With the key-value store: every call, as judged by the linearizability checker (else empty).</summary>
    public IReadOnlyList<KvOperation> KeyValueHistory { get; init; } = [];

    public required IReadOnlyList<string> FinalLog { get; init; }

    public required IReadOnlyList<string> Trace { get; init; }

    /// <summary>With <see cref="SimulationOptions.TraceHash"/>: the hash of the whole trace (else 0).</summary>
    public ulong TraceHash { get; init; }

    public bool Valid => Violations.Count == 0;
}

/// <summary>A violation found by a sweep, with the seed that replays it.</summary>
public sealed record SeedViolation(int Seed, ViolationKind Kind, string Detail);

/// <summary>The totals of a sweep over many seeds.</summary>
public sealed record SweepResult
{
    public required int Seeds { get; init; }

    public required int FromSeed { get; init; }

    public required IReadOnlyDictionary<string, long> Faults { get; init; }

    public required long Operations { get; init; }

    public required long Acknowledged { get; init; }

    public required long Events { get; init; }

    public required IReadOnlyList<SeedViolation> Violations { get; init; }

    public required double ElapsedSeconds { get; init; }

    /// <summary>Each seed's trace hash (with <see cref="SimulationOptions.TraceHash"/>), by seed.</summary>
    public required IReadOnlyList<(int Seed, ulong Hash)> TraceHashes { get; init; }

    /// <summary>Seeds with at least one violation, lowest first.</summary>
    public IReadOnlyList<int> FailingSeeds => [.. Violations.Select(v => v.Seed).Distinct().Order()];
}

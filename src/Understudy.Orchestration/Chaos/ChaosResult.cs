using System.Text.Json;
using System.Text.Json.Serialization;

namespace Understudy.Orchestration.Chaos;

/// <summary>p50, p99 and max of a set of durations (ms).</summary>
public sealed record Percentiles(double P50, double P99, double Max, int Count)
{
    public static Percentiles Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return new Percentiles(0, 0, 0, 0);
        }

        var sorted = values.Order().ToArray();
        double At(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        return new Percentiles(Math.Round(At(0.5), 1), Math.Round(At(0.99), 1), Math.Round(sorted[^1], 1), sorted.Length);
    }
}

/// <summary>The verdict and figures of a chaos run (what `--json` prints and result.json holds).</summary>
public sealed record ChaosResult
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public required string Scenario { get; init; }

    public required int Seed { get; init; }

    public required int Faults { get; init; }

    public required IReadOnlyDictionary<string, int> FaultsByKind { get; init; }

    public required int Operations { get; init; }

    public required int Acknowledged { get; init; }

    public int Failed { get; init; }

    public int Indeterminate { get; init; }

    public required int Lost { get; init; }

    public required int Duplicated { get; init; }

    public required int OrderViolations { get; init; }

    public int ReadViolations { get; init; }

    public required int EpochViolations { get; init; }

    public int FinalLength { get; init; }

    public required int Failovers { get; init; }

    /// <summary>The monitor group's size.</summary>
    public int Monitors { get; init; } = 1;

    /// <summary>Writes the clients gave up on with the primary's "no lease" refusal (0 when every new active monitor renewed the lease in time).</summary>
    public long LeaseRefused { get; init; }

    public required Percentiles UnavailableMs { get; init; }

    /// <summary>valid or invalid.</summary>
    public required string Verdict { get; init; }

    public IReadOnlyList<string> Violations { get; init; } = [];

    /// <summary>Why the run was cut short (a fault that did not recover in time, a process that could not be restarted), or null.</summary>
    public string? Aborted { get; init; }

    public string? RunFolder { get; init; }

    /// <summary>When the workload started (the history's time zero), to place monitor events on the timeline.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    public double ElapsedSeconds { get; init; }
}

using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Understudy.Orchestration.Bench;

/// <summary>Latency percentiles in milliseconds, exact (from every sample, sorted).</summary>
public sealed record LatencyMs(double P50, double P99, double P999, double Max, double Mean)
{
    /// <summary>Percentiles of <paramref name="ticks"/> (Stopwatch ticks); sorts the array in place.</summary>
    public static LatencyMs OfTicks(long[] ticks)
    {
        if (ticks.Length == 0)
        {
            return new LatencyMs(0, 0, 0, 0, 0);
        }

        Array.Sort(ticks);
        var toMs = 1000.0 / System.Diagnostics.Stopwatch.Frequency;
        double At(double q) => Math.Round(ticks[Math.Clamp((int)Math.Ceiling(q * ticks.Length) - 1, 0, ticks.Length - 1)] * toMs, 3);
        var mean = 0.0;
        foreach (var t in ticks)
        {
            mean += t;
        }

        return new LatencyMs(At(0.50), At(0.99), At(0.999), Math.Round(ticks[^1] * toMs, 3), Math.Round(mean / ticks.Length * toMs, 3));
    }
}

/// <summary>p50, p99 and max of the per-round unavailability (ms).</summary>
public sealed record UnavailableMs(double P50, double P99, double Max, double Min, double Mean)
{
    public static UnavailableMs Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return new UnavailableMs(0, 0, 0, 0, 0);
        }

        var sorted = values.Order().ToArray();
        double At(double q) => Math.Round(sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)], 1);
        return new UnavailableMs(At(0.50), At(0.99), Math.Round(sorted[^1], 1), Math.Round(sorted[0], 1), Math.Round(sorted.Average(), 1));
    }
}

/// <summary>CPU used during the measured window, in CPU-seconds per wall second (1.0 = one core busy), by process.</summary>
public sealed record CpuUse(double Bench, double Primary, double Backups, double Monitor)
{
    public double Total => Math.Round(Bench + Primary + Backups + Monitor, 2);
}

/// <summary>What `bench throughput --json` prints (and result.json in the run folder holds).</summary>
public sealed record ThroughputResult
{
    public required double WritesPerSec { get; init; }

    public required LatencyMs LatencyMs { get; init; }

    public required int Clients { get; init; }

    public required string Fsync { get; init; }

    public required int Payload { get; init; }

    public required double Seconds { get; init; }

    public required long Acknowledged { get; init; }

    public required long Errors { get; init; }

    /// <summary>Client connections (UnderstudyClient instances) the writers share.</summary>
    public required int Connections { get; init; }

    public required int Servers { get; init; }

    /// <summary>True when every server stayed in the in-sync set for the whole window: every ack was replicated to all.</summary>
    public required bool InSyncThroughout { get; init; }

    public required CpuUse Cpu { get; init; }

    /// <summary>Each server's frames, acks and loop turns per second over the window (from its /metrics).</summary>
    public IReadOnlyList<ServerCounts>? Counts { get; init; }

    public required string LoadBefore { get; init; }

    public required string LoadAfter { get; init; }

    public string? RunFolder { get; init; }

    /// <summary>The state machine measured: messages (appends) or kv (puts and gets; <see cref="WritesPerSec"/> counts puts).</summary>
    public string StateMachine { get; init; } = "messages";

    /// <summary>Key-value store: linearizable gets answered per second (absent for the message store).</summary>
    public double? ReadsPerSec { get; init; }

    public LatencyMs? ReadLatencyMs { get; init; }

    public long? Reads { get; init; }

    public double? GetRatio { get; init; }

    public int? KeySpace { get; init; }

    /// <summary>Key-value store: every key read back after the run and judged against the acknowledged puts.</summary>
    public KeyValueVerdict? KeyValueCheck { get; init; }

    /// <summary>
    /// The run passed: something was acknowledged or read, every server stayed in sync, and every key was judged valid.
    /// The CLI's exit code and the run folder's clean-up both go by it.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Passed => InSyncThroughout && (KeyValueCheck?.Valid ?? true) && Acknowledged + (Reads ?? 0) > 0;
}

/// <summary>One failover round: the client-observed gap and, from the monitor's events, where the time went.</summary>
public sealed record FailoverRound(int Round, string Fault, string OldPrimary, string? NewPrimary, double UnavailableMs, double? DetectedMs, double? PromotedMs, double? FirstAckMs)
{
    /// <summary>The active monitor the round killed (its heartbeat address), for the monitor faults.</summary>
    public string? Monitor { get; init; }

    /// <summary>When the first of the writers' clients learned of the new primary, in ms after the fault.</summary>
    public double? LearnedMs { get; init; }

    /// <summary>
    /// Where that client heard it: "active" or "follower" (the monitor it is subscribed to, against the active one
    /// after the round), or "server" (a refusal from a server naming the new primary).
    /// </summary>
    public string? LearnedFrom { get; init; }
}

/// <summary>What `bench failover --json` prints.</summary>
public sealed record FailoverResult
{
    public required int Rounds { get; init; }

    public required string Fault { get; init; }

    /// <summary>The monitor group's size.</summary>
    public int Monitors { get; init; } = 1;

    /// <summary>Writes the workload gave up on with a "no lease" refusal (0 when a new active monitor renews the lease in time).</summary>
    public long LeaseRefused { get; init; }

    /// <summary>Writes that failed cleanly (not applied) for any reason.</summary>
    public long Failed { get; init; }

    public required UnavailableMs UnavailableMs { get; init; }

    public required int Lost { get; init; }

    public required int Duplicated { get; init; }

    public required string Verdict { get; init; }

    public required int Acknowledged { get; init; }

    public required int Clients { get; init; }

    public required string Fsync { get; init; }

    /// <summary>Rounds whose gap exceeded one second.</summary>
    public required int OverOneSecond { get; init; }

    public required IReadOnlyList<FailoverRound> Samples { get; init; }

    public IReadOnlyList<string> Violations { get; init; } = [];

    public required string LoadBefore { get; init; }

    public required string LoadAfter { get; init; }

    public string? RunFolder { get; init; }
}

public static class BenchJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The 1, 5 and 15 minute load averages (Linux), to say how busy the shared machine was.</summary>
    public static string LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return string.Join(' ', parts.Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
        catch (UnauthorizedAccessException)
        {
            return "unknown";
        }
    }

    /// <summary>CPU time (user + system) a process has used so far, from /proc; zero when unknown.</summary>
    public static TimeSpan CpuTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");

            // Fields after the command name, which is in parentheses and may hold spaces.
            var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var ticks = long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / 100.0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return TimeSpan.Zero;
        }
    }
}

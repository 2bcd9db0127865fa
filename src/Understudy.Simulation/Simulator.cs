using System.Collections.Concurrent;
using System.Diagnostics;

namespace Understudy.Simulation;

/// <summary>
/// Runs the protocol core through simulated fault schedules. A run is a pure function of its options:
/// the same seed gives the same history, byte for byte, so any failure replays from its seed.
/// </summary>
public static class Simulator
{
    /// <summary>Runs one seed.</summary>
    public static SimulationResult Run(SimulationOptions options) => new SimCluster(options).Run();

    /// <summary>
    /// Runs <paramref name="count"/> seeds from <paramref name="fromSeed"/> on all cores. Seeds are
    /// independent, so the totals do not depend on the order they finish in.
    /// </summary>
    public static SweepResult Sweep(
        int fromSeed,
        int count,
        Func<int, SimulationOptions> optionsForSeed,
        int? parallelism = null,
        Action<int, SimulationResult>? progress = null,
        bool stopAtFirstViolation = false,
        CancellationToken cancellationToken = default)
    {
        var watch = Stopwatch.StartNew();
        var results = new ConcurrentBag<SimulationResult>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var parallel = new ParallelOptions
        {
            MaxDegreeOfParallelism = parallelism ?? Environment.ProcessorCount,
            CancellationToken = stop.Token,
        };
        var done = 0;
        try
        {
            Parallel.For(fromSeed, fromSeed + count, parallel, seed =>
            {
                var result = Run(optionsForSeed(seed));

                // Keep only what the totals need: histories of passing seeds are large.
                results.Add(result with { History = new(), KeyValueHistory = [], Trace = [], FinalLog = [] });
                progress?.Invoke(Interlocked.Increment(ref done), result);
                if (stopAtFirstViolation && !result.Valid)
                {
                    stop.Cancel();
                }
            });
        }
        catch (OperationCanceledException) when (stopAtFirstViolation && !cancellationToken.IsCancellationRequested)
        {
        }

        var ordered = results.OrderBy(r => r.Seed).ToList();
        var faults = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var r in ordered)
        {
            foreach (var (kind, n) in r.Faults)
            {
                faults[kind] = faults.GetValueOrDefault(kind) + n;
            }
        }

        return new SweepResult
        {
            Seeds = ordered.Count,
            FromSeed = fromSeed,
            Faults = faults,
            Operations = ordered.Sum(r => (long)r.Stats.Operations),
            Acknowledged = ordered.Sum(r => (long)r.Stats.Acknowledged),
            Events = ordered.Sum(r => r.Events),
            Violations = [.. ordered.SelectMany(r => r.Violations.Select(v => new SeedViolation(r.Seed, v.Kind, v.Detail)))],
            ElapsedSeconds = watch.Elapsed.TotalSeconds,
            TraceHashes = [.. ordered.Select(r => (r.Seed, r.TraceHash))],
        };
    }
}

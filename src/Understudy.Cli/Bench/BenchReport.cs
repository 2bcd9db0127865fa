using System.Globalization;
using System.Text;
using System.Text.Json;
using ScottPlot;
using Understudy.Orchestration.Bench;

namespace Understudy.Cli.Bench;

/// <summary>
/// Summarises a comparison folder made by benchmarks/compare.sh: medians over repetitions, pooled failover
/// percentiles, Understudy-to-peer ratios, as summary.md, summary.json and plots (PNG and SVG).
/// </summary>
internal static class BenchReport
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Write(string folder)
    {
        var path = Path.Combine(folder, "results.jsonl");
        var rows = File.ReadAllLines(path).Where(l => l.Trim().Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        var machine = rows.Where(r => Text(r, "system") == "machine").ToList();
        var runs = rows.Where(r => Text(r, "system") != "machine").ToList();
        var md = new StringBuilder();
        md.AppendLine(Invariant, $"Machine: {Num(machine.FirstOrDefault(), "nproc")} cores, kernel {Text(machine.FirstOrDefault(), "kernel")}; load average {Text(machine.FirstOrDefault(), "load")} at the start ({Text(machine.FirstOrDefault(), "started")}), {Text(machine.LastOrDefault(), "load")} at the end ({Text(machine.LastOrDefault(), "finished")}).");
        md.AppendLine();

        // Throughput: medians over repetitions.
        var throughput = runs.Where(r => Text(r, "measure").StartsWith("throughput", StringComparison.Ordinal))
            .GroupBy(r => (System: Text(r, "system"), Measure: Text(r, "measure")))
            .ToDictionary(g => g.Key, g => g.ToList());
        md.AppendLine("| throughput, 64 clients, 64-byte writes | writes/s (median) | each repetition | p50 ms | p99 ms | load before each |");
        md.AppendLine("|---|---:|---|---:|---:|---|");
        var bars = new List<(string Name, double Value, bool Ours)>();
        foreach (var ((system, measure), list) in throughput.OrderBy(k => k.Key.Measure).ThenBy(k => k.Key.System == "understudy" ? 0 : 1))
        {
            var w = Median(list.Select(r => Num(r, "writesPerSec")));
            var name = $"{Label(system, measure)}";
            md.AppendLine(Invariant, $"| {name} | {w:0} | {string.Join(", ", list.Select(r => Num(r, "writesPerSec").ToString("0", Invariant)))} | {Median(list.Select(r => Num(r, "p50"))):0.00} | {Median(list.Select(r => Num(r, "p99"))):0.00} | {string.Join("; ", list.Select(r => Text(r, "loadBefore")))} |");
            bars.Add((name.Replace(", ", "\n", StringComparison.Ordinal), w, system == "understudy"));
        }

        md.AppendLine();
        foreach (var mode in new[] { "never", "always" })
        {
            if (throughput.TryGetValue(("understudy", $"throughput-{mode}"), out var ours) && throughput.TryGetValue(("redis", $"throughput-{mode}"), out var theirs))
            {
                var ratios = ours.Zip(theirs, (o, t) => Num(o, "writesPerSec") / Num(t, "writesPerSec")).ToList();
                md.AppendLine(Invariant, $"Ratio Understudy / Redis ({(mode == "never" ? "no fsync" : "fsync on every write")}): median of medians {Median(ours.Select(r => Num(r, "writesPerSec"))) / Median(theirs.Select(r => Num(r, "writesPerSec"))):0.00}×; per repetition (same minute) {string.Join(", ", ratios.Select(x => x.ToString("0.00", Invariant)))}×.");
                md.AppendLine();
            }
        }

        var inSync = runs.Where(r => Text(r, "system") == "understudy" && r.TryGetProperty("inSync", out _)).ToList();
        if (inSync.Count > 0)
        {
            md.AppendLine(Invariant, $"Understudy runs in which every server stayed in the in-sync set (every ack replicated to both backups): {inSync.Count(r => r.GetProperty("inSync").GetBoolean())} of {inSync.Count}.");
            md.AppendLine();
        }

        // Failover: pooled samples.
        var failover = runs.Where(r => Text(r, "measure").StartsWith("failover", StringComparison.Ordinal)).ToList();
        md.AppendLine("| failover (client-observed unavailability) | rounds | p50 ms | p99 ms | max ms | over 1 s | lost acked writes | load before → after |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---|");
        var failoverBars = new List<(string Name, double Value, bool Ours)>();
        var distribution = new List<(string Name, double[] Samples, bool Ours)>();
        foreach (var r in failover)
        {
            var samples = r.GetProperty("samples").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            var p = UnavailableMs.Of(samples);
            var name = Label(Text(r, "system"), Text(r, "measure"));
            var noRecovery = r.TryGetProperty("noRecovery", out var nr) ? nr.GetInt32() : 0;
            md.AppendLine(Invariant, $"| {name} | {samples.Length}{(noRecovery > 0 ? $" (+{noRecovery} with no recovery in the script's window)" : string.Empty)} | {p.P50:0} | {p.P99:0} | {p.Max:0} | {samples.Count(s => s > 1000)} | {Num(r, "lost"):0} | {Text(r, "loadBefore")} → {Text(r, "loadAfter")} |");
            failoverBars.Add((name.Replace(", ", "\n", StringComparison.Ordinal), p.P50, Text(r, "system") == "understudy"));
            distribution.Add((name, samples, Text(r, "system") == "understudy"));
        }

        var ourKill = failover.FirstOrDefault(r => Text(r, "system") == "understudy" && Text(r, "measure") == "failover-kill");
        if (ourKill.ValueKind == JsonValueKind.Object)
        {
            var ours = UnavailableMs.Of(ourKill.GetProperty("samples").EnumerateArray().Select(x => x.GetDouble()).ToArray());
            md.AppendLine();
            foreach (var peer in failover.Where(r => Text(r, "system") != "understudy"))
            {
                var theirs = UnavailableMs.Of(peer.GetProperty("samples").EnumerateArray().Select(x => x.GetDouble()).ToArray());
                if (ours.P50 > 0)
                {
                    md.AppendLine(Invariant, $"{Label(Text(peer, "system"), "failover-kill")} median / Understudy median after kill -9: {theirs.P50 / ours.P50:0.0}×.");
                }
            }
        }

        File.WriteAllText(Path.Combine(folder, "summary.md"), md.ToString());
        if (bars.Count > 0)
        {
            BenchPlots.Comparison(bars, "Acknowledged, replicated writes/s: 64 clients, 64 B, 3 servers (median)", "writes/s", Path.Combine(folder, "throughput-comparison"));
        }

        if (failoverBars.Count > 0)
        {
            BenchPlots.Comparison(failoverBars, "Median client-observed unavailability per failover", "ms", Path.Combine(folder, "failover-comparison"));
            Distribution(distribution, Path.Combine(folder, "failover-distribution"));
        }

        return md.ToString();
    }

    /// <summary>Every failover sample of every system, on a log axis.</summary>
    private static void Distribution(List<(string Name, double[] Samples, bool Ours)> systems, string pathWithoutExtension)
    {
        var plot = new Plot();
        var random = new Random(1);
        for (var i = 0; i < systems.Count; i++)
        {
            var (name, samples, ours) = systems[i];
            if (samples.Length == 0)
            {
                continue;
            }

            var xs = samples.Select(_ => i + ((random.NextDouble() - 0.5) * 0.3)).ToArray();
            var ys = samples.Select(s => Math.Log10(Math.Max(1, s))).ToArray();
            var points = plot.Add.ScatterPoints(xs, ys);
            points.Color = (ours ? Colors.SteelBlue : Colors.DimGray).WithAlpha(0.7);
            points.MarkerSize = 6;
            var median = plot.Add.Line(i - 0.25, Math.Log10(Math.Max(1, UnavailableMs.Of(samples).P50)), i + 0.25, Math.Log10(Math.Max(1, UnavailableMs.Of(samples).P50)));
            median.Color = Colors.DarkRed;
            median.LineWidth = 2;
        }

        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var ms in new[] { 10.0, 30, 100, 300, 1000, 3000, 10000, 30000 })
        {
            ticks.AddMajor(Math.Log10(ms), ms >= 1000 ? $"{ms / 1000:0} s" : $"{ms:0} ms");
        }

        plot.Axes.Left.TickGenerator = ticks;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            [.. Enumerable.Range(0, systems.Count).Select(i => (double)i)],
            [.. systems.Select(s => s.Name.Replace(", ", "\n", StringComparison.Ordinal))]);
        plot.Axes.SetLimitsX(-0.6, systems.Count - 0.4);
        plot.YLabel("client-observed unavailability (log scale; red: median)");
        plot.Title("Every failover round, same sitting");
        plot.SavePng(pathWithoutExtension + ".png", 1000, 520);
        plot.SaveSvg(pathWithoutExtension + ".svg", 1000, 520);
    }

    private static string Label(string system, string measure) => (system, measure) switch
    {
        ("understudy", "throughput-never") => "Understudy, fsync never",
        ("understudy", "throughput-always") => "Understudy, fsync always",
        ("understudy", "throughput-never-conn64") => "Understudy, fsync never, 64 connections",
        ("redis", "throughput-never") => "Redis RPUSH+WAIT 2",
        ("redis", "throughput-always") => "Redis RPUSH+WAIT 2, appendfsync always",
        ("understudy", "failover-kill") => "Understudy, kill -9",
        ("understudy", "failover-pause") => "Understudy, SIGSTOP",
        ("sentinel", _) => "Redis Sentinel, down-after 200 ms",
        ("etcd", _) => "etcd, heartbeat 50 / election 250 ms",
        _ => $"{system} {measure}",
    };

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v.ToString() : "?";

    private static double Num(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
}

using ScottPlot;

namespace Understudy.Orchestration.Bench;

/// <summary>Pictures of bench runs (PNG and SVG), written into the run folder.</summary>
public static class BenchPlots
{
    /// <summary>A histogram of write latencies on a log axis (sorted Stopwatch ticks).</summary>
    public static void LatencyHistogram(long[] sortedTicks, string title, string pathWithoutExtension)
    {
        if (sortedTicks.Length == 0)
        {
            return;
        }

        var toMs = 1000.0 / System.Diagnostics.Stopwatch.Frequency;

        // Buckets of equal width in log10(ms): 20 per decade from 10 µs to 10 s.
        const int PerDecade = 20;
        var counts = new double[6 * PerDecade];
        foreach (var t in sortedTicks)
        {
            var log = Math.Log10(Math.Max(t * toMs, 0.01));
            counts[Math.Clamp((int)((log + 2) * PerDecade), 0, counts.Length - 1)]++;
        }

        var plot = new Plot();
        var xs = Enumerable.Range(0, counts.Length).Select(i => -2 + ((i + 0.5) / PerDecade)).ToArray();
        var bars = plot.Add.Bars(xs, counts.Select(c => c * 100.0 / sortedTicks.Length).ToArray());
        foreach (var bar in bars.Bars)
        {
            bar.Size = 1.0 / PerDecade;
            bar.LineWidth = 0;
            bar.FillColor = Colors.SteelBlue;
        }

        double At(double q) => Math.Log10(Math.Max(0.01, sortedTicks[Math.Clamp((int)Math.Ceiling(q * sortedTicks.Length) - 1, 0, sortedTicks.Length - 1)] * toMs));
        foreach (var (q, name) in new[] { (0.5, "p50"), (0.99, "p99"), (0.999, "p99.9") })
        {
            var line = plot.Add.VerticalLine(At(q));
            line.LinePattern = LinePattern.Dashed;
            line.Color = Colors.DarkRed;
            line.Text = $"{name} {Math.Pow(10, At(q)):0.##} ms";
            line.LabelFontSize = 11;
        }

        LogMsAxis(plot.Axes.Bottom);
        var lo = Math.Floor(Math.Log10(Math.Max(0.01, sortedTicks[0] * toMs)) * 2) / 2;
        var hi = Math.Ceiling(Math.Log10(Math.Max(0.01, sortedTicks[^1] * toMs)) * 2) / 2;
        plot.Axes.SetLimitsX(lo, Math.Max(hi, lo + 1));
        plot.Axes.Margins(bottom: 0);
        plot.XLabel("write latency (acknowledged by every in-sync server)");
        plot.YLabel("% of writes");
        plot.Title(title);
        Save(plot, pathWithoutExtension, 1000, 500);
    }

    /// <summary>The unavailability of each failover round, with p50/p99 lines.</summary>
    public static void FailoverRounds(FailoverResult result, string pathWithoutExtension)
    {
        if (result.Samples.Count == 0)
        {
            return;
        }

        var plot = new Plot();
        var xs = result.Samples.Select(s => (double)s.Round).ToArray();
        var gap = plot.Add.ScatterPoints(xs, result.Samples.Select(s => s.UnavailableMs).ToArray());
        gap.MarkerSize = 8;
        gap.Color = Colors.SteelBlue;
        gap.LegendText = "client-observed unavailability";
        var promoted = result.Samples.Where(s => s.PromotedMs is not null).ToList();
        if (promoted.Count > 0)
        {
            var p = plot.Add.ScatterPoints(promoted.Select(s => (double)s.Round).ToArray(), promoted.Select(s => s.PromotedMs!.Value).ToArray());
            p.MarkerSize = 5;
            p.MarkerShape = MarkerShape.OpenCircle;
            p.Color = Colors.Purple;
            p.LegendText = "fault → promoted (monitor)";
        }

        foreach (var (value, name) in new[] { (result.UnavailableMs.P50, "p50"), (result.UnavailableMs.P99, "p99") })
        {
            var line = plot.Add.HorizontalLine(value);
            line.LinePattern = LinePattern.Dashed;
            line.Color = Colors.DarkRed;
            line.Text = $"{name} {value:0} ms";
            line.LabelFontSize = 11;
        }

        plot.Axes.SetLimitsY(0, Math.Max(result.UnavailableMs.Max * 1.15, 50));
        plot.XLabel("round");
        plot.YLabel("ms");
        plot.Title($"Understudy failover after {result.Fault} of the primary: {result.Rounds} rounds, p50 {result.UnavailableMs.P50:0} ms, p99 {result.UnavailableMs.P99:0} ms, max {result.UnavailableMs.Max:0} ms, lost {result.Lost}");
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, pathWithoutExtension, 1000, 500);
    }

    /// <summary>Bars of named values with one colour per group (for the comparison figures in docs/).</summary>
    public static void Comparison(IReadOnlyList<(string Name, double Value, bool Ours)> rows, string title, string axis, string pathWithoutExtension)
    {
        var plot = new Plot();
        var bars = rows.Select((r, i) => new Bar
        {
            Position = i,
            Value = r.Value,
            FillColor = r.Ours ? Colors.SteelBlue : Colors.Gray,
            Label = r.Value >= 100 ? $"{r.Value:0}" : $"{r.Value:0.##}",
        }).ToList();
        plot.Add.Bars(bars);

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            [.. Enumerable.Range(0, rows.Count).Select(i => (double)i)],
            [.. rows.Select(r => r.Name)]);
        plot.Axes.Margins(bottom: 0);
        plot.YLabel(axis);
        plot.Title(title);
        Save(plot, pathWithoutExtension, 1000, 480);
    }

    private static void LogMsAxis(ScottPlot.IAxis axis)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var ms in new[] { 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000 })
        {
            ticks.AddMajor(Math.Log10(ms), ms >= 1000 ? $"{ms / 1000:0} s" : $"{ms:0.##} ms");
        }

        axis.TickGenerator = ticks;
    }

    private static void Save(Plot plot, string pathWithoutExtension, int width, int height)
    {
        plot.SavePng(pathWithoutExtension + ".png", width, height);
        plot.SaveSvg(pathWithoutExtension + ".svg", width, height);
    }
}

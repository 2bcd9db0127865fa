using ScottPlot;
using Understudy.Checking;

namespace Understudy.Orchestration.Chaos;

/// <summary>
/// The picture of a chaos run: each operation's latency over time (log scale), coloured by outcome, fault
/// windows shaded and promotions marked; written as PNG and SVG into the run folder.
/// </summary>
public static class TimelinePlot
{
    public static void Write(IReadOnlyList<Operation> operations, IReadOnlyList<FaultRecord> faults, IReadOnlyList<(long At, long Epoch, string Member)> promotions, ChaosResult result, string pathWithoutExtension)
    {
        var plot = new Plot();
        var open = new Dictionary<int, Operation>();
        var series = new Dictionary<string, (List<double> X, List<double> Y)>
        {
            ["ok (write)"] = ([], []),
            ["ok (read)"] = ([], []),
            ["failed"] = ([], []),
            ["unknown (timed out)"] = ([], []),
        };
        foreach (var op in operations)
        {
            if (op.Type == OpType.Invoke)
            {
                open[op.Process] = op;
                continue;
            }

            if (!open.Remove(op.Process, out var invoked))
            {
                continue;
            }

            var key = op.Type switch
            {
                OpType.Ok => op.Function == OpFunction.Append ? "ok (write)" : "ok (read)",
                OpType.Fail => "failed",
                _ => "unknown (timed out)",
            };
            var latencyMs = Math.Max(0.01, (op.Time - invoked.Time) / 1000.0);
            series[key].X.Add(invoked.Time / 1_000_000.0);
            series[key].Y.Add(Math.Log10(latencyMs));
        }

        var maxY = series.Values.SelectMany(s => s.Y).DefaultIfEmpty(1).Max();

        // Labels only while they can be read; a long run shows the shading and the lines alone.
        var labelled = faults.Count <= 24;
        foreach (var f in faults)
        {
            var span = plot.Add.HorizontalSpan(f.Start / 1_000_000.0, Math.Max(f.End, f.Start + 10_000) / 1_000_000.0);
            span.FillStyle.Color = Colors.Red.WithAlpha(labelled ? 0.12 : 0.07);
            span.LineStyle.Width = 0;
            if (labelled)
            {
                var label = plot.Add.Text(f.Kind, f.Start / 1_000_000.0, maxY + 0.35);
                label.LabelFontSize = 10;
                label.LabelFontColor = Colors.DarkRed;
            }
        }

        var colors = new Dictionary<string, Color>
        {
            ["ok (write)"] = Colors.Green,
            ["ok (read)"] = Colors.SteelBlue,
            ["failed"] = Colors.Red,
            ["unknown (timed out)"] = Colors.Orange,
        };
        foreach (var (name, (xs, ys)) in series)
        {
            if (xs.Count == 0)
            {
                continue;
            }

            var scatter = plot.Add.ScatterPoints(xs.ToArray(), ys.ToArray());
            scatter.Color = colors[name].WithAlpha(name.StartsWith("ok", StringComparison.Ordinal) ? 0.45 : 0.9);
            scatter.MarkerSize = name.StartsWith("ok", StringComparison.Ordinal) ? 2 : 6;
            scatter.LegendText = $"{name}: {xs.Count}";
        }

        foreach (var (at, epoch, member) in promotions)
        {
            var line = plot.Add.VerticalLine(at / 1_000_000.0);
            line.Color = Colors.Purple.WithAlpha(0.8);
            line.LineWidth = 1.5f;
            line.LinePattern = LinePattern.Dashed;
            if (promotions.Count <= 24)
            {
                line.Text = $"epoch {epoch}";
                line.LabelFontSize = 10;
            }
            else
            {
                line.LineWidth = 0.6f;
            }

            _ = member;
        }

        // Log-scale latency axis with ticks in milliseconds.
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var ms in new[] { 0.01, 0.1, 1, 10, 100, 1000, 10000 })
        {
            ticks.AddMajor(Math.Log10(ms), ms >= 1000 ? $"{ms / 1000:0} s" : $"{ms:0.##} ms");
        }

        plot.Axes.Left.TickGenerator = ticks;
        plot.Axes.SetLimitsY(-2.2, maxY + 0.6);
        plot.XLabel("time since the workload started (s)");
        plot.YLabel("operation latency");
        plot.Title($"chaos {result.Scenario} (seed {result.Seed}): {result.Verdict.ToUpperInvariant()} · {result.Acknowledged} acknowledged · lost {result.Lost} · duplicated {result.Duplicated} · {result.Failovers} failovers · unavailable p50 {result.UnavailableMs.P50:0} ms, max {result.UnavailableMs.Max:0} ms");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(pathWithoutExtension + ".png", 1400, 600);
        plot.SaveSvg(pathWithoutExtension + ".svg", 1400, 600);
    }
}

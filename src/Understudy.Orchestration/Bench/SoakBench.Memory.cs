using System.Globalization;
using Understudy.Orchestration.Clusters;

namespace Understudy.Orchestration.Bench;

// What the servers use while the soak runs: each one's RSS and managed heap sampled every second, the picture of
// them, and the folder sizes the backup restarts report.
public sealed partial class SoakBench
{
    /// <summary>Each second: every running server's VmRSS and managed heap.</summary>
    private async Task SampleAsync(LocalCluster cluster, HttpClient http, List<SoakSample> samples, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            do
            {
                var at = Math.Round(_clock.Elapsed.TotalSeconds, 2);
                foreach (var s in cluster.Servers)
                {
                    if (!s.Process.Running || RssBytes(s.Process.Pid) is not { } rss)
                    {
                        continue;
                    }

                    var heap = await HeapBytesAsync(http, cluster.Options.HostOf(s.Number), cluster.Options.HttpPortOf(s.Number), cancellationToken).ConfigureAwait(false);
                    samples.Add(new SoakSample(at, $"server{s.Number}", Math.Round(rss / 1048576.0, 1), heap is { } h ? Math.Round(h / 1048576.0, 1) : null));
                }
            }
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            // Sampling ends with the run.
        }
    }

    private static long? RssBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var kb = line["VmRSS:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // The process exited between the check and the read.
        }

        return null;
    }

    private static async Task<double?> HeapBytesAsync(HttpClient http, string host, int port, CancellationToken cancellationToken)
    {
        const string Name = "understudy_server_managed_heap_bytes ";
        try
        {
            var text = await http.GetStringAsync(new Uri($"http://{host}:{port}/metrics"), cancellationToken).ConfigureAwait(false);
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(Name, StringComparison.Ordinal));
            return line is null ? null : double.Parse(line[Name.Length..], NumberStyles.Float, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or FormatException)
        {
            // A server starting or stopping does not answer; the sample has no heap then.
            return null;
        }
    }

    /// <summary>The RSS curve of each server (solid) and its managed heap (dashed), with the faults marked; PNG and SVG.</summary>
    private static void PlotMemory(SoakResult result, List<SoakSample> samples, string pathWithoutExtension)
    {
        if (samples.Count == 0)
        {
            return;
        }

        var plot = new ScottPlot.Plot();
        var colours = new[] { ScottPlot.Colors.SteelBlue, ScottPlot.Colors.DarkOrange, ScottPlot.Colors.SeaGreen };
        foreach (var (group, i) in samples.GroupBy(s => s.Server).OrderBy(g => g.Key, StringComparer.Ordinal).Select((g, i) => (g, i)))
        {
            var colour = colours[i % colours.Length];
            var rss = plot.Add.ScatterLine(group.Select(s => s.Seconds).ToArray(), group.Select(s => s.RssMb).ToArray());
            rss.Color = colour;
            rss.LegendText = $"{group.Key} RSS";
            var withHeap = group.Where(s => s.HeapMb is not null).ToList();
            if (withHeap.Count > 0)
            {
                var heap = plot.Add.ScatterLine(withHeap.Select(s => s.Seconds).ToArray(), withHeap.Select(s => s.HeapMb!.Value).ToArray());
                heap.Color = colour;
                heap.LinePattern = ScottPlot.LinePattern.Dashed;
                heap.LegendText = $"{group.Key} managed heap";
            }
        }

        foreach (var e in result.Events.Where(e => e.What.EndsWith("started", StringComparison.Ordinal)))
        {
            var line = plot.Add.VerticalLine(e.Seconds);
            line.LinePattern = ScottPlot.LinePattern.Dotted;
            line.Color = ScottPlot.Colors.DarkRed;
            // "wiped backup: server3 started" → "wiped backup": the three labels must fit side by side.
            var label = e.What.Split(':')[0];
            line.Text = label == "cluster started" ? "cluster restart" : label;
            line.LabelFontSize = 10;
        }

        plot.Axes.SetLimitsY(0, samples.Max(s => s.RssMb) * 1.15);
        plot.XLabel("seconds since load began");
        plot.YLabel("MiB");
        plot.Title($"Understudy soak: {result.Writes} writes of {result.Payload} B, fsync {result.Fsync}, {result.WritesPerSec:0} writes/s, lost {result.Lost}, duplicated {result.Duplicated}");
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plot.SavePng(pathWithoutExtension + ".png", 1100, 550);
        plot.SaveSvg(pathWithoutExtension + ".svg", 1100, 550);
    }

    private static long FolderBytes(string folder) =>
        Directory.Exists(folder) ? new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) : 0;

    private static Dictionary<string, SoakMemory> Memory(List<SoakSample> samples, Func<SoakSample, double?> value) =>
        samples.Where(s => value(s) is not null).GroupBy(s => s.Server).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(
            g => g.Key,
            g => new SoakMemory(value(g.First())!.Value, g.Max(s => value(s)!.Value), value(g.Last())!.Value));
}

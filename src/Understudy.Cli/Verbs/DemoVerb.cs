using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Understudy.Checking;
using Understudy.Cli.Infrastructure;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Workloads;
using Understudy.Protocol;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy demo`: the tour. A local cluster, a client writing steadily, the primary killed (promotion
/// and client switch timed), then the chain (the new primary killed too; the last server carries on), the
/// killed servers restarted and caught up, and the log read back and judged.
/// </summary>
internal static class DemoVerb
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Folder for the demo cluster's data and logs (emptied first).", DefaultValueFactory = _ => ".understudy/demo" };
        var writers = new Option<int>("--writers") { Description = "Concurrent client writers.", DefaultValueFactory = _ => 4 };
        var command = new Command("demo", "Watch a failover: a 3-server cluster, steady writes, kill -9 of the primary and then of the next one, restarts, and a check that nothing acknowledged was lost or duplicated. Under a minute.")
        {
            data, writers,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var folder = Path.GetFullPath(parse.GetValue(data)!);
            var count = parse.GetValue(writers);
            if (count is < 1 or > 64)
            {
                throw new UsageException($"--writers is {count}: expected 1 to 64");
            }

            UpPreflight.CheckDataFolder(folder);
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }

            var options = new LocalClusterOptions { DataDirectory = folder }.WithFreePortsIfTaken();
            return await RunAsync(options, count, cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(LocalClusterOptions options, int writers, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        await using var cluster = new LocalCluster(options);
        Say($"[bold]Understudy demo[/]: a monitor and 3 servers as separate processes (logs in {Markup.Escape(Path.Combine(options.DataDirectory, "logs"))})");
        cluster.StartAll();
        var healthy = await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30), cancellationToken);
        if (healthy is null)
        {
            Say("[red]the cluster did not come up within 30 s; see the logs above[/]");
            return 1;
        }

        Say($"cluster up in {total.Elapsed.TotalSeconds:0.0} s: primary {Name(cluster, healthy.Primary)}, backups {string.Join(", ", healthy.Members.Where(m => m.Role == "backup").Select(m => Name(cluster, m.Address)))}; dashboard {cluster.Dashboard?.ToString() ?? "(HTTP off)"}");

        await using var workload = new Workload(cluster.MonitorAddress, new WorkloadOptions { Workers = writers, RequestTimeout = TimeSpan.FromSeconds(30) });
        var switches = new List<(DateTimeOffset At, NodeAddress Primary)>();
        workload.Client.PrimaryChanged += (_, e) =>
        {
            lock (switches)
            {
                switches.Add((DateTimeOffset.UtcNow, e.Primary));
            }
        };
        await workload.WaitForPrimaryAsync(cancellationToken);
        workload.Start();
        Say($"{writers} client writers appending steadily…");
        await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
        Say($"  {workload.Recorder.Acknowledged} messages acknowledged so far");

        var gaps = new List<double>();
        var killed = new List<LocalServer>();
        for (var round = 1; round <= 2; round++)
        {
            var primary = await cluster.PrimaryAsync(cancellationToken);
            if (primary is null)
            {
                Say("[red]no primary to kill[/]");
                return 1;
            }

            Say(round == 1
                ? $"[yellow]kill -9 the primary[/], {Name(cluster, primary.Address.ToString())}"
                : $"[yellow]chain failure: kill -9 the new primary too[/], {Name(cluster, primary.Address.ToString())}; the last server must carry on alone");
            var epoch = workload.Recorder.LatestEpoch;
            var killedAt = DateTimeOffset.UtcNow;
            var killedAtUs = workload.Recorder.Now;
            var lastBefore = workload.Recorder.AcksAround(killedAtUs).LastBefore;
            primary.Process.Kill();
            killed.Add(primary);

            var firstAck = await workload.Recorder.WaitForAckAfterAsync(killedAtUs, epoch, TimeSpan.FromSeconds(20), cancellationToken);
            if (firstAck < 0)
            {
                Say("[red]no write was acknowledged within 20 s of the kill[/]");
                return 1;
            }

            var events = await cluster.EventsAsync(cancellationToken);
            var failed = events.LastOrDefault(e => e.Kind == "PrimaryFailed" && e.At >= killedAt.AddSeconds(-1));
            var promoted = events.LastOrDefault(e => e.Kind == "Promoted" && e.At >= killedAt.AddSeconds(-1));
            DateTimeOffset? switched;
            lock (switches)
            {
                switched = switches.Where(s => s.At >= killedAt).Select(s => (DateTimeOffset?)s.At).FirstOrDefault();
            }

            var gap = (firstAck - lastBefore) / 1000.0;
            gaps.Add(gap);
            Say($"  detected  +{Ms(failed?.At - killedAt)}  ({Markup.Escape(failed?.Detail ?? "?")})");
            Say($"  promoted  +{Ms(promoted?.At - killedAt)}  {Name(cluster, promoted?.Member)} leads epoch {promoted?.Epoch}");
            Say($"  client switched +{Ms(switched - killedAt)}, first write acknowledged +{(firstAck - killedAtUs) / 1000.0:0.0} ms");
            Say($"  [bold]writes were unavailable for {gap:0.0} ms[/] (last acknowledgement before the kill to the first after)");
            await Task.Delay(TimeSpan.FromSeconds(1.5), cancellationToken);
            Say($"  {workload.Recorder.Acknowledged} messages acknowledged so far");
        }

        Say("[yellow]restart the killed servers[/]: they recover their logs, catch up as backups and rejoin the in-sync set");
        var restartWatch = Stopwatch.StartNew();
        foreach (var s in killed)
        {
            s.Process.Start();
        }

        var rejoined = await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30), cancellationToken);
        Say(rejoined is null
            ? "[red]the restarted servers did not rejoin within 30 s[/]"
            : $"  all 3 in sync again after {restartWatch.Elapsed.TotalMilliseconds:0} ms: primary {Name(cluster, rejoined.Primary)}, epoch {rejoined.Epoch}");
        await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        await workload.StopAsync(cancellationToken);

        Say("read the whole log back and check it against every acknowledgement…");
        var log = await workload.Client.ReadAllAsync(cancellationToken);
        var check = HistoryChecker.Check(workload.Recorder.History, [.. log.Select(m => m.Text)]);
        foreach (var v in check.Violations.Take(10))
        {
            Say($"  [red]{Markup.Escape(v.ToString())}[/]");
        }

        var maxGap = gaps.Where(g => !double.IsNaN(g)).DefaultIfEmpty(0).Max();
        Say($"  {log.Count} messages in the log, {check.Stats.Acknowledged} acknowledged, {workload.Recorder.Failed} failed, {workload.Recorder.Unknown} unanswered; verdict: {(check.Valid ? "[green]valid[/]" : "[red]INVALID[/]")} ({total.Elapsed.TotalSeconds:0.0} s in all)");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"summary: acked={check.Stats.Acknowledged} lost={check.Stats.Lost} duplicated={check.Stats.Duplicated} failovers={gaps.Count} max_unavailable_ms={maxGap:0}"));
        return check.Valid && rejoined is not null ? 0 : 1;
    }

    private static string Name(LocalCluster cluster, string? address) =>
        address is not null && NodeAddress.TryParse(address, out var a) && cluster.ServerAt(a) is { } s ? $"server {s.Number} ({s.Address})" : address ?? "?";

    private static string Ms(TimeSpan? span) => span is { } s ? $"{s.TotalMilliseconds:0.0} ms" : "?";

    private static void Say(string markup) => AnsiConsole.MarkupLine(markup);
}

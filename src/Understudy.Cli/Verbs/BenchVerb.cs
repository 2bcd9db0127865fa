using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Understudy.Cli.Bench;
using Understudy.Checking.Linearizability;
using Understudy.Cli.Infrastructure;
using Understudy.Client;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Bench;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy bench throughput` and `understudy bench failover`: figures from a fresh local cluster of real
/// processes (on free ports, in a run folder), comparable with the peers in docs/BENCHMARKS.md.
/// </summary>
internal static class BenchVerb
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure a fresh local 3-server cluster: acknowledged, replicated writes per second and their latency, or client-observed unavailability across repeated failovers. See docs/BENCHMARKS.md for how to compare with Redis and etcd.");
        command.Subcommands.Add(Throughput());
        command.Subcommands.Add(Failover());
        command.Subcommands.Add(Report());
        command.Subcommands.Add(Soak());
        command.Subcommands.Add(Checker());
        return command;
    }

    private static Command Report()
    {
        var folder = new Argument<string>("folder") { Description = "A folder made by benchmarks/compare.sh (holding results.jsonl)." };
        var command = new Command("report", "Summarise a side-by-side comparison folder: medians, ratios, summary.md and plots.") { folder };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(folder)!;
            if (!File.Exists(Path.Combine(path, "results.jsonl")))
            {
                throw new UsageException($"'{path}' holds no results.jsonl: make one with benchmarks/compare.sh");
            }

            Console.WriteLine(BenchReport.Write(path));
            return 0;
        });
        return command;
    }

    /// <summary>--keep-data: the servers' stores stay in the run folder after a run that passed (by default they are deleted then).</summary>
    private static Option<bool> KeepData() => new("--keep-data") { Description = "Keep the servers' stores (log segments, snapshots: hundreds of MB a run) in the run folder after a run that passed; by default they are deleted then, and a failed run keeps everything." };

    private static Command Throughput()
    {
        var clients = new Option<int>("--clients") { Description = "Concurrent closed-loop writers (each waits for its ack before the next write).", DefaultValueFactory = _ => 64 };
        var seconds = new Option<double>("--seconds") { Description = "Length of the measured window, after the warm-up.", DefaultValueFactory = _ => 10 };
        var payload = new Option<int>("--payload") { Description = "Message size in bytes.", DefaultValueFactory = _ => 64 };
        var fsync = new Option<string>("--fsync") { Description = "always (fsync before every ack, group commit), batch (fsync every 10 ms; an ack may precede it) or never (acks once in every in-sync server's OS).", DefaultValueFactory = _ => "always" };
        fsync.AcceptOnlyFromAmong("always", "never", "batch");
        var connections = new Option<int>("--connections") { Description = "Client connections the writers share (UnderstudyClient instances); default min(clients, 4)." };
        var warmup = new Option<double>("--warmup") { Description = "Seconds of load before measuring.", DefaultValueFactory = _ => 2 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: writesPerSec, latencyMs {p50,p99,p999}, clients, fsync, ..." };
        var output = new Option<string?>("--out") { Description = "Run folder (default runs/bench-throughput-TIME)." };
        var stateMachine = new Option<string>("--state-machine") { Description = "messages (appends to the message store) or kv (puts and linearizable gets on the key-value store; writes/s and reads/s are reported apart, and every key is read back and judged after the run).", DefaultValueFactory = _ => "messages" };
        stateMachine.AcceptOnlyFromAmong("messages", "kv");
        var getRatio = new Option<double>("--get-ratio") { Description = "kv: the share of operations that are gets, 0 to 1 (the rest are puts).", DefaultValueFactory = _ => 0 };
        var keys = new Option<int>("--keys") { Description = "kv: keys drawn uniformly from this many, each written once before the run.", DefaultValueFactory = _ => 1000 };
        var clientLoop = new Option<string>("--client-loop") { Description = "shared (the bench's clients run on one ClientLoop: one thread of work, one tick timer) or own (a loop and a timer per client, to compare).", DefaultValueFactory = _ => "shared" };
        clientLoop.AcceptOnlyFromAmong("shared", "own");
        var resumeOn = new Option<string>("--resume-on") { Description = "reader (a client's worker sends its next request on the thread that read the answer) or pool (on the thread pool, one hand-off per request, as before round 21; to compare).", DefaultValueFactory = _ => "reader" };
        resumeOn.AcceptOnlyFromAmong("reader", "pool");
        var counts = new Option<bool>("--counts") { Description = "Turn on the servers' HTTP and report, per server, replication frames, entries per frame, acknowledgements and loop turns per second over the window." };
        var check = new Option<string>("--check") { Description = "kv: on (record every put, read every key back after the run and judge it) or off (record and judge nothing: the load generator then does per request only what a plain one, such as Redis's, does; for comparing speed, never for checking).", DefaultValueFactory = _ => "on" };
        check.AcceptOnlyFromAmong("on", "off");
        var serverEnv = new Option<string[]>("--server-env") { Description = "NAME=VALUE set in the servers' environment only (not the bench's or the monitor's), e.g. a runtime setting to compare; repeatable.", AllowMultipleArgumentsPerToken = false };
        var keepData = KeepData();
        var command = new Command("throughput", "Acknowledged, replicated writes per second from C concurrent writers, with latency percentiles; with --state-machine kv, puts and gets per second.")
        {
            clients, seconds, payload, fsync, connections, warmup, json, output, stateMachine, getRatio, keys, clientLoop, resumeOn, counts, check, serverEnv, keepData,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var c = parse.GetValue(clients);
            var s = parse.GetValue(seconds);
            var b = parse.GetValue(payload);
            if (c is < 1 or > 4096 || s is <= 0 or > 3600 || b is < 0 or > 1_000_000)
            {
                throw new UsageException("--clients must be 1 to 4096, --seconds more than 0 and at most 3600, --payload 0 to 1000000");
            }

            var machine = parse.GetValue(stateMachine) == "kv" ? BuiltInStateMachine.Kv : BuiltInStateMachine.Messages;
            var ratio = parse.GetValue(getRatio);
            var keySpace = parse.GetValue(keys);
            if (ratio is < 0 or > 1 || double.IsNaN(ratio) || keySpace is < 1 or > 10_000_000)
            {
                throw new UsageException("--get-ratio must be 0 to 1 and --keys 1 to 10000000");
            }

            if (machine != BuiltInStateMachine.Kv && (parse.GetResult(getRatio) is { Implicit: false } || parse.GetResult(keys) is { Implicit: false } || parse.GetResult(check) is { Implicit: false }))
            {
                throw new UsageException("--get-ratio, --keys and --check need --state-machine kv");
            }

            var env = parse.GetValue(serverEnv) ?? [];
            if (env.FirstOrDefault(e => e.IndexOf('=', StringComparison.Ordinal) < 1) is { } bad)
            {
                throw new UsageException($"--server-env takes NAME=VALUE, e.g. DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 (got '{bad}')");
            }

            var conns = parse.GetValue(connections) is > 0 and var n ? Math.Min(n, c) : Math.Min(c, 4);
            var quiet = parse.GetValue(json);
            var options = new ThroughputOptions
            {
                Clients = c,
                Seconds = s,
                Payload = b,
                Fsync = parse.GetValue(fsync)!,
                Connections = conns,
                WarmupSeconds = Math.Max(0, parse.GetValue(warmup)),
                StateMachine = machine,
                GetRatio = ratio,
                KeySpace = keySpace,
                SharedClientLoop = parse.GetValue(clientLoop) == "shared",
                ResumeOn = parse.GetValue(resumeOn) == "pool" ? CallResumption.ThreadPool : CallResumption.Reader,
                Counts = parse.GetValue(counts),
                CheckValues = parse.GetValue(check) == "on",
                ServerEnvironment = env,
                KeepData = parse.GetValue(keepData),
                RunFolder = Folder(parse.GetValue(output), machine == BuiltInStateMachine.Kv ? $"throughput-kv-c{c}-g{ratio * 100:0}-{parse.GetValue(fsync)}" : $"throughput-c{c}-{parse.GetValue(fsync)}"),
            };
            var result = await new ThroughputBench(options, Say(quiet)).RunAsync(cancellationToken);
            if (quiet)
            {
                Console.WriteLine(JsonSerializer.Serialize(result, BenchJson.Options));
            }
            else
            {
                var table = Table();
                Row(table, result.StateMachine == "kv" ? "acknowledged puts/s" : "acknowledged writes/s", $"[bold]{result.WritesPerSec:0}[/] ({result.Acknowledged} in {result.Seconds:0.0} s, {result.Errors} errors)");
                Row(table, "latency", $"p50 {result.LatencyMs.P50:0.###} ms · p99 {result.LatencyMs.P99:0.###} ms · p99.9 {result.LatencyMs.P999:0.###} ms · max {result.LatencyMs.Max:0.###} ms");
                if (result.ReadsPerSec is { } reads)
                {
                    Row(table, "linearizable gets/s", $"[bold]{reads:0}[/] ({result.Reads} in {result.Seconds:0.0} s; {result.GetRatio:P0} of operations over {result.KeySpace} keys)");
                    if (result.ReadLatencyMs is { } rl)
                    {
                        Row(table, "get latency", $"p50 {rl.P50:0.###} ms · p99 {rl.P99:0.###} ms · p99.9 {rl.P999:0.###} ms · max {rl.Max:0.###} ms");
                    }
                }

                if (result.KeyValueCheck is { } check)
                {
                    Row(table, "keys read back", check.Valid
                        ? $"[green]valid[/]: {check.KeysChecked} keys, none lost"
                        : $"[red]INVALID[/]: {check.Lost} lost, {check.Unknown} never written: {Markup.Escape(string.Join("; ", check.Examples))}");
                }
                Row(table, "setup", $"{result.Clients} writers on {result.Connections} connection(s), {result.Payload}-byte messages, fsync {result.Fsync}, {result.Servers} servers");
                Row(table, "replicated to all", result.InSyncThroughout ? "[green]yes[/]: every server stayed in sync" : "[red]no[/]: a server left the in-sync set during the window");
                Row(table, "CPU (cores)", $"bench {result.Cpu.Bench:0.00} · primary {result.Cpu.Primary:0.00} · backups {result.Cpu.Backups:0.00} · monitor {result.Cpu.Monitor:0.00}");
                Row(table, "load average", $"{result.LoadBefore} before, {result.LoadAfter} after ({Environment.ProcessorCount} cores)");
                Row(table, "run folder", Markup.Escape(result.RunFolder ?? string.Empty) + " (result.json, latency.png/svg, data/logs)");
                AnsiConsole.Write(table);
            }

            return result.Passed ? 0 : 1;
        });
        return command;
    }

    private static Command Failover()
    {
        var rounds = new Option<int>("--rounds") { Description = "Failovers to measure.", DefaultValueFactory = _ => 10 };
        var fault = new Option<string>("--fault") { Description = "kill (SIGKILL the primary, restart it after), pause (SIGSTOP it until a new primary serves, then SIGCONT) kill-backup (SIGKILL a backup: how long writes stall until the primary has it out of the in-sync set), kill-monitor (SIGKILL the active monitor, the primary untouched: the write stall while another takes over) or kill-primary-and-monitor (SIGKILL the active monitor and the primary at once: time until writes are back).", DefaultValueFactory = _ => "kill" };
        fault.AcceptOnlyFromAmong("kill", "pause", "kill-backup", "kill-monitor", "kill-primary-and-monitor");
        var monitors = new Option<int>("--monitors") { Description = "Monitors in the group: 1 (configuration in a file) or 3 (a Raft group); the monitor faults default to 3.", DefaultValueFactory = _ => 0 };
        var clients = new Option<int>("--clients") { Description = "Closed-loop writers whose acks time the gap.", DefaultValueFactory = _ => 4 };
        var fsync = new Option<string>("--fsync") { Description = "always, batch or never for the servers.", DefaultValueFactory = _ => "always" };
        fsync.AcceptOnlyFromAmong("always", "never", "batch");
        var json = new Option<bool>("--json") { Description = "Print one JSON object: rounds, unavailableMs {p50,p99,max}, lost, ..." };
        var output = new Option<string?>("--out") { Description = "Run folder (default runs/bench-failover-TIME)." };
        var leaseMs = new Option<int?>("--lease-ms") { Description = "The primary's lease the monitors grant (monitor --lease-ms; default: the monitor's, 800). A monitor failover costs clients nothing only when it completes within the lease." };
        var keepData = KeepData();
        var command = new Command("failover", "Client-observed unavailability per failover (last ack before the fault to the first ack from the new primary), over repeated rounds; then the whole history is checked: nothing acknowledged may be lost or duplicated.")
        {
            rounds, fault, clients, fsync, json, output, monitors, leaseMs, keepData,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var n = parse.GetValue(rounds);
            var c = parse.GetValue(clients);
            if (n is < 1 or > 10_000 || c is < 1 or > 256)
            {
                throw new UsageException("--rounds must be 1 to 10000 and --clients 1 to 256");
            }

            var faultName = parse.GetValue(fault)!;

            // Killing the only monitor of a group of one measures a restart, not a takeover: the monitor faults default to three.
            var m = parse.GetValue(monitors) is > 0 and var given ? given : faultName.EndsWith("monitor", StringComparison.Ordinal) ? 3 : 1;
            if (m is not (1 or 3 or 5))
            {
                throw new UsageException("--monitors must be 1, 3 or 5");
            }

            var quiet = parse.GetValue(json);
            var options = new FailoverOptions
            {
                Rounds = n,
                Fault = faultName,
                Monitors = m,
                Clients = c,
                Fsync = parse.GetValue(fsync)!,
                LeaseMs = parse.GetValue(leaseMs) is { } lease ? (lease is >= 100 and <= 60_000 ? lease : throw new UsageException("--lease-ms must be 100 to 60000")) : null,
                KeepData = parse.GetValue(keepData),
                RunFolder = Folder(parse.GetValue(output), $"failover-{faultName}-m{m}"),
            };
            var result = await new FailoverBench(options, Say(quiet)).RunAsync(cancellationToken);
            if (quiet)
            {
                Console.WriteLine(JsonSerializer.Serialize(result, BenchJson.Options));
            }
            else
            {
                var table = Table();
                Row(table, "rounds", $"{result.Rounds} × {result.Fault}, {result.Monitors} monitor(s), {result.Clients} writers, fsync {result.Fsync}");
                Row(table, "failed writes", $"{result.Failed} ({result.LeaseRefused} refused for want of a lease)");
                Row(table, "unavailable", $"p50 [bold]{result.UnavailableMs.P50:0.0}[/] ms · p99 {result.UnavailableMs.P99:0.0} ms · max {result.UnavailableMs.Max:0.0} ms · min {result.UnavailableMs.Min:0.0} ms; {result.OverOneSecond} over 1 s");
                Row(table, "acknowledged", result.Acknowledged.ToString(CultureInfo.InvariantCulture));
                Row(table, "lost / duplicated", $"{Colour(result.Lost)} / {Colour(result.Duplicated)}");
                EndReport(table, result.LoadBefore, result.LoadAfter, result.RunFolder, "result.json, failover.png/svg, history.jsonl, data/logs", result.Violations, result.Verdict);
            }

            return result.Verdict == "valid" ? 0 : 1;
        });
        return command;
    }

    /// <summary>The last rows every judged bench shows (load, run folder), the table, the first violations and the verdict.</summary>
    private static void EndReport(Table table, string loadBefore, string loadAfter, string? runFolder, string files, IEnumerable<string> violations, string verdict)
    {
        Row(table, "load average", $"{loadBefore} before, {loadAfter} after ({Environment.ProcessorCount} cores)");
        Row(table, "run folder", Markup.Escape(runFolder ?? string.Empty) + $" ({files})");
        AnsiConsole.Write(table);
        foreach (var v in violations.Take(20))
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(v)}[/]");
        }

        AnsiConsole.MarkupLine(verdict == "valid" ? "verdict: [green bold]valid[/]" : "verdict: [red bold]INVALID[/]");
    }

    // `bench soak` (issue 9): kept in one block so the failover-fault work on this file merges cleanly.
    private static Command Soak()
    {
        var writes = new Option<long>("--writes") { Description = "Writes to send in all (each once, closed loop).", DefaultValueFactory = _ => 2_000_000 };
        var payload = new Option<int>("--payload") { Description = "Message size in bytes.", DefaultValueFactory = _ => 64 };
        var fsync = new Option<string>("--fsync") { Description = "always, batch or never for the servers.", DefaultValueFactory = _ => "always" };
        fsync.AcceptOnlyFromAmong("always", "never", "batch");
        var clients = new Option<int>("--clients") { Description = "Concurrent closed-loop writers.", DefaultValueFactory = _ => 64 };
        var connections = new Option<int>("--connections") { Description = "Client connections the writers share; default min(clients, 4)." };
        var snapshotEvery = new Option<string?>("--snapshot-every") { Description = "Passed to every server (entries between snapshots)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: writes, rssMb {server: {start,max,end}}, restartToInSyncMs, wipedCatchUpMBps, clusterRestartMs, lost, lastQuarterRssGrowth, ..." };
        var output = new Option<string?>("--out") { Description = "Run folder (default runs/bench-soak-TIME)." };
        var keepData = KeepData();
        var command = new Command("soak", "Sustained load on a fresh local 3-server cluster, sampling each server's RSS and managed heap every second; near the end a backup is restarted, then another wiped and restarted; at the end the whole cluster is restarted. The whole log is then read back and judged: nothing acknowledged may be lost or duplicated.")
        {
            writes, payload, fsync, clients, connections, snapshotEvery, json, output, keepData,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var n = parse.GetValue(writes);
            var c = parse.GetValue(clients);
            var b = parse.GetValue(payload);
            if (n is < 100 or > 1_000_000_000 || c is < 1 or > 4096 || b is < 0 or > 1_000_000)
            {
                throw new UsageException("--writes must be 100 to 1000000000, --clients 1 to 4096, --payload 0 to 1000000");
            }

            var quiet = parse.GetValue(json);
            var options = new SoakOptions
            {
                Writes = n,
                Clients = c,
                Payload = b,
                Fsync = parse.GetValue(fsync)!,
                Connections = parse.GetValue(connections) is > 0 and var k ? Math.Min(k, c) : Math.Min(c, 4),
                ServerArguments = parse.GetValue(snapshotEvery) is { } every ? ["--snapshot-every", every] : [],
                KeepData = parse.GetValue(keepData),
                RunFolder = Folder(parse.GetValue(output), "soak"),
            };
            var result = await new SoakBench(options, Say(quiet)).RunAsync(cancellationToken);
            if (quiet)
            {
                Console.WriteLine(JsonSerializer.Serialize(result, BenchJson.Options));
            }
            else
            {
                var table = Table();
                Row(table, "writes", $"{result.Writes} sent, {result.Acknowledged} acknowledged, {result.Failed} failed, {result.Unknown} unknown in {result.Seconds:0.0} s ({result.WritesPerSec:0}/s)");
                foreach (var (server, rss) in result.RssMb)
                {
                    var heap = result.HeapMb.TryGetValue(server, out var h) ? $" · heap {h.Start:0} → max {h.Max:0} → {h.End:0} MiB" : string.Empty;
                    Row(table, $"{server} RSS", $"{rss.Start:0} → max [bold]{rss.Max:0}[/] → {rss.End:0} MiB{heap}");
                }

                if (result.LastQuarterRssGrowth.Count > 0)
                {
                    Row(table, "RSS over the last quarter", string.Join(" · ", result.LastQuarterRssGrowth.Select(g => $"{g.Key} {g.Value.StartMb:0} → {g.Value.EndMb:0} MiB ([bold]{g.Value.Percent:+0.0;-0.0}[/] %)")) + " (servers not restarted in it; first tenth against last tenth)");
                }

                Row(table, "backup restart → in sync", $"[bold]{result.RestartToInSyncMs:0}[/] ms");
                Row(table, "wiped backup catch-up", $"{result.WipedCatchUpMb:0.0} MiB in {result.WipedCatchUpMs:0} ms: [bold]{result.WipedCatchUpMBps:0.0}[/] MiB/s; clients saw {result.CatchUpWritesPerSec:0} writes/s (steady {result.SteadyWritesPerSec:0})");
                Row(table, "cluster restart → first ack", $"[bold]{result.ClusterRestartMs:0}[/] ms (monitor kept up)");
                Row(table, "lost / duplicated", $"{Colour(result.Lost)} / {Colour(result.Duplicated)} ({result.LogMessages} messages read back)");
                EndReport(table, result.LoadBefore, result.LoadAfter, result.RunFolder, "result.json, samples.json, rss.png/svg, data/logs", result.Violations, result.Verdict);
            }

            return result.Verdict == "valid" ? 0 : 1;
        });
        return command;
    }

    // `bench checker` (issue 11): kept in one block so the other bench work on this file merges cleanly.
    private static Command Checker()
    {
        var ops = new Option<int>("--ops") { Description = "Operations in the generated history.", DefaultValueFactory = _ => 100_000 };
        var clients = new Option<int>("--clients") { Description = "Clients calling one at a time, in parallel with each other.", DefaultValueFactory = _ => 64 };
        var keys = new Option<int>("--keys") { Description = "Keys the calls spread over (k0, k1, ...).", DefaultValueFactory = _ => 1_000 };
        var unknown = new Option<double>("--unknown") { Description = "Share of calls whose outcome is unknown (timeouts, failovers): maybe applied, maybe not.", DefaultValueFactory = _ => 0.02 };
        var seed = new Option<int>("--seed") { Description = "The generator's seed (the same seed gives the same history).", DefaultValueFactory = _ => 1 };
        var parallel = new Option<int>("--parallel") { Description = "Threads the checker searches keys on (default: one per core).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var json = new Option<bool>("--json") { Description = "Print one JSON object: operations, clients, keys, unknown, verdict, elapsedMs." };
        var command = new Command("checker", "Time the linearizability checker on a generated key-value history (linearizable by construction, from a simulated execution with unknown outcomes); the target is 100,000 operations from 64 clients over 1,000 keys in 10 s or less.")
        {
            ops, clients, keys, unknown, seed, parallel, json,
        };
        command.SetAction(parse =>
        {
            var n = parse.GetValue(ops);
            var c = parse.GetValue(clients);
            var k = parse.GetValue(keys);
            var u = parse.GetValue(unknown);
            if (n is < 1 or > 10_000_000 || c is < 1 or > 100_000 || k is < 1 or > 10_000_000 || double.IsNaN(u) || u is < 0 or > 1)
            {
                throw new UsageException("--ops must be 1 to 10000000, --clients 1 to 100000, --keys 1 to 10000000 and --unknown 0 to 1");
            }

            var generated = Stopwatch.StartNew();
            var history = SyntheticKvHistory.Linearizable(n, c, k, u, parse.GetValue(seed));
            generated.Stop();
            var result = LinearizabilityChecker.Check(history, new LinearizabilityOptions { MaxDegreeOfParallelism = Math.Max(1, parse.GetValue(parallel)) });
            var unknownCount = history.Count(o => o.Outcome == KvOutcome.Unknown);
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    operations = n,
                    clients = c,
                    keys = k,
                    unknown = unknownCount,
                    verdict = result.Verdict.ToString(),
                    elapsedMs = Math.Round(result.Elapsed.TotalMilliseconds, 1),
                    generateMs = Math.Round(generated.Elapsed.TotalMilliseconds, 1),
                }));
            }
            else
            {
                var table = Table();
                Row(table, "history", $"{n} operations from {c} clients over {k} keys, {unknownCount} of unknown outcome (generated in {generated.Elapsed.TotalMilliseconds:0} ms)");
                Row(table, "checked", $"[bold]{result.Elapsed.TotalMilliseconds:0.0} ms[/] on {Math.Max(1, parse.GetValue(parallel))} thread(s), {Environment.ProcessorCount} cores");
                Row(table, "verdict", result.Linearizable ? "[green]linearizable[/]" : $"[red]{result.Verdict}[/]");
                AnsiConsole.Write(table);
            }

            // The history is linearizable by construction: any other verdict is a checker bug or an exhausted budget.
            return result.Linearizable ? 0 : 1;
        });
        return command;
    }

    private static string Folder(string? given, string name) =>
        Path.GetFullPath(given ?? Path.Combine("runs", $"bench-{name}-{DateTime.Now:yyyyMMdd-HHmmss}"));

    private static Action<string> Say(bool quiet) => line =>
    {
        if (!quiet)
        {
            AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(line)}");
        }
    };

    private static Table Table() => new Table().Border(TableBorder.Rounded).HideHeaders().AddColumn("what").AddColumn("value");

    private static void Row(Table table, string what, string value) => table.AddRow(Markup.Escape(what), value);

    private static string Colour(int count) => count == 0 ? "[green]0[/]" : $"[red]{count}[/]";
}

using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Spectre.Console;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Cli.Infrastructure;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Chaos;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy chaos SCENARIO`: faults on a real local cluster while clients write, then a verdict from the
/// history checker, figures, and a timeline plot in the run folder. `chaos verify RUN` re-judges a run.
/// </summary>
internal static class ChaosVerb
{
    private static readonly Dictionary<string, ChaosScenario> Scenarios = Enum.GetValues<ChaosScenario>().ToDictionary(ChaosRunner.Name, s => s);

    public static Command Create()
    {
        var faults = new Option<int>("--faults") { Description = "How many faults to inject.", DefaultValueFactory = _ => 5 };
        var seed = new Option<int?>("--seed") { Description = "Seed for the fault choices (random if not given; printed so a run can be repeated)." };
        var clients = new Option<int>("--clients") { Description = "Concurrent client workers recording the history.", DefaultValueFactory = _ => 4 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with the verdict and figures." };
        var output = new Option<string?>("--out") { Description = "Run folder for the history, the plot and the logs (default runs/chaos-SCENARIO-TIME)." };
        var fsync = new Option<string>("--fsync") { Description = "always, batch or never for the servers.", DefaultValueFactory = _ => "always" };
        fsync.AcceptOnlyFromAmong("always", "batch", "never");
        var monitors = new Option<int?>("--monitors") { Description = "Monitors in the group: 1, 3 or 5 (default 3 for the monitor-* scenarios, else 1). With 3, mixed draws the monitor-group faults too." };
        var stateMachine = new Option<string>("--state-machine") { Description = "The servers' service: messages (appends and counts, judged against the log read back) or kv (gets, puts, deletes, compare-and-sets and increments over a few shared keys, judged by the linearizability checker).", DefaultValueFactory = _ => "messages" };
        stateMachine.AcceptOnlyFromAmong("messages", "kv");
        var command = new Command("chaos", "Inject faults into a real local cluster while clients write, record every operation (Jepsen-style), heal, read the log back and judge: valid only if no acknowledged write was lost or duplicated and every read and epoch was consistent. `chaos SCENARIO`, or `chaos verify RUN_FOLDER`.");

        // Each scenario is a command of its own, so `chaos verify RUN_FOLDER` has a usage line of its own too.
        foreach (var name in Scenarios.Keys)
        {
            var description = ScenarioHelp.FirstOrDefault(h => h.Name == name).Description ?? name;
            var scenario = new Command(name, description) { faults, seed, clients, json, output, fsync, monitors, stateMachine };
            scenario.SetAction((parse, cancellationToken) => RunAsync(name, parse, faults, seed, clients, json, output, fsync, monitors, stateMachine, cancellationToken));
            command.Subcommands.Add(scenario);
        }

        var run = new Argument<string>("run-folder") { Description = "A chaos run folder (holding history.jsonl and final-log.txt)." };
        var verifyJson = new Option<bool>("--json") { Description = "Print the checker's result as JSON." };
        var verify = new Command("verify", "Judge a recorded history again against its final log (for instance after editing it by hand).") { run, verifyJson };
        verify.SetAction(parse => Verify(parse.GetValue(run)!, parse.GetValue(verifyJson)));
        command.Subcommands.Add(verify);
        return command;
    }

    private static readonly (string Name, string Description)[] ScenarioHelp =
    [
        ("kill-primary", "kill -9 the primary, again and again, restarting each after."),
        ("kill-backup", "kill -9 a backup."),
        ("kill-primary-and-backup", "kill -9 the primary and a backup at once."),
        ("chain", "kill the primary, then the next, down to the last server."),
        ("random", "kill -9 a random server."),
        ("kill-all", "kill -9 every server, then restart them."),
        ("pause", "SIGSTOP a server past the failure timeout, then SIGCONT."),
        ("monitor", "kill and restart the monitor while servers fail."),
        ("partition", "cut servers off with network namespaces (needs root and iproute2)."),
        ("mixed", "all of them, at random (the monitor-group ones too with --monitors 3)."),
        ("monitor-leader", "kill -9 the active monitor of a group of three under load, again and again; the primary untouched."),
        ("monitor-partition", "cut the active monitor and the primary off from the other monitors and the backups (needs root and iproute2)."),
        ("monitor-majority", "kill two of three monitors (and, every other time, the primary): nothing may be promoted; bring them back."),
    ];

    private static async Task<int> RunAsync(string name, ParseResult parse, Option<int> faults, Option<int?> seed, Option<int> clients, Option<bool> json, Option<string?> output, Option<string> fsync, Option<int?> monitors, Option<string> stateMachine, CancellationToken cancellationToken)
    {
        var n = parse.GetValue(faults);
        var c = parse.GetValue(clients);
        if (n is < 1 or > 10_000 || c is < 1 or > 256)
        {
            throw new UsageException("--faults must be 1 to 10000 and --clients 1 to 256");
        }

        if (parse.GetValue(monitors) is { } m && (m is not (1 or 3 or 5) || (m == 1 && name.StartsWith("monitor-", StringComparison.Ordinal))))
        {
            throw new UsageException("--monitors must be 1, 3 or 5 (3 or 5 for the monitor-* scenarios)");
        }

        var chosenSeed = parse.GetValue(seed) ?? Random.Shared.Next(1, 1_000_000);
        var folder = Path.GetFullPath(parse.GetValue(output) ?? Path.Combine("runs", $"chaos-{name}-{DateTime.Now:yyyyMMdd-HHmmss}-seed{chosenSeed}"));
        var options = new ChaosOptions
        {
            Scenario = Scenarios[name],
            Faults = n,
            Seed = chosenSeed,
            Clients = c,
            RunFolder = folder,
            Fsync = parse.GetValue(fsync)!,
            Monitors = parse.GetValue(monitors),
            StateMachine = parse.GetValue(stateMachine) == "kv" ? BuiltInStateMachine.Kv : BuiltInStateMachine.Messages,
        };
        var quiet = parse.GetValue(json);
        void Say(string line)
        {
            if (!quiet)
            {
                AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(line)}");
            }
        }

        Say($"chaos {name}: {n} fault(s), seed {chosenSeed}, {c} clients; run folder {folder}");
        ChaosResult result;
        try
        {
            await using var runner = new ChaosRunner(options, Say);

            // SIGTERM or SIGINT: tear the processes and the namespaces down synchronously, whatever the run is doing.
            // The cancellation the signal also brings ends a healthy run cleanly, but a stuck one never gets that far:
            // the CLI gives up on it after its termination timeout and exits with the namespaces and bridge left
            // behind. The handlers run in no set order and the CLI's own may hold its thread until it exits, so the
            // exit itself tears down too. The signal's usual effect goes on.
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => runner.Teardown());
            using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => runner.Teardown());
            void OnExit(object? sender, EventArgs e) => runner.Teardown();
            AppDomain.CurrentDomain.ProcessExit += OnExit;
            try
            {
                result = await runner.RunAsync(cancellationToken);
            }
            finally
            {
                AppDomain.CurrentDomain.ProcessExit -= OnExit;
            }
        }
        catch (ChaosUnsupportedException e)
        {
            Console.Error.WriteLine($"chaos {name}: not possible here: {e.Message}");
            return ExitCodes.CannotRunHere;
        }

        Report(result, quiet);
        return result.Verdict == "valid" ? 0 : 1;
    }

    private static int Verify(string folder, bool json)
    {
        var historyPath = Path.Combine(folder, "history.jsonl");
        var logPath = Path.Combine(folder, "final-log.txt");
        if (File.Exists(historyPath) && File.Exists(Path.Combine(folder, "linearizability.txt")))
        {
            return VerifyKeyValue(historyPath, json);
        }

        if (!File.Exists(historyPath) || !File.Exists(logPath))
        {
            throw new UsageException($"'{folder}' is not a chaos run folder: it needs history.jsonl and final-log.txt");
        }

        History history;
        using (var reader = File.OpenText(historyPath))
        {
            history = History.ReadJsonLines(reader);
        }

        var check = HistoryChecker.Check(history, File.ReadAllLines(logPath));
        RedrawTimeline(folder, history);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { verdict = check.Valid ? "valid" : "invalid", stats = check.Stats, violations = check.Violations.Select(v => v.ToString()) }, ChaosResult.Json));
        }
        else
        {
            foreach (var v in check.Violations)
            {
                Console.WriteLine(v);
            }

            Console.WriteLine($"{check.Stats.Acknowledged} acknowledged, lost {check.Stats.Lost}, duplicated {check.Stats.Duplicated}, order violations {check.Stats.OrderViolations}, read violations {check.Stats.ReadViolations}, epoch violations {check.Stats.EpochViolations}");
            Console.WriteLine($"verdict: {(check.Valid ? "valid" : "invalid")}");
        }

        return check.Valid ? 0 : 1;
    }

    /// <summary>A key-value run (`--state-machine kv`) is judged again by the linearizability checker.</summary>
    private static int VerifyKeyValue(string historyPath, bool json)
    {
        KvHistory history;
        using (var reader = File.OpenText(historyPath))
        {
            history = KvHistory.ReadJsonLines(reader);
        }

        var result = history.Check();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { verdict = result.Linearizable ? "valid" : "invalid", operations = result.OperationsChecked, violations = result.Keys.Where(k => k.Verdict != LinearizabilityVerdict.Linearizable).Select(k => k.ToString()) }, ChaosResult.Json));
        }
        else
        {
            Console.WriteLine(result.Describe());
            Console.WriteLine($"verdict: {(result.Linearizable ? "valid" : "invalid")}");
        }

        return result.Linearizable ? 0 : 1;
    }

    /// <summary>Redraws the run's timeline from its files, when the run recorded its faults and its result.</summary>
    private static void RedrawTimeline(string folder, History history)
    {
        var faultsPath = Path.Combine(folder, "faults.json");
        var eventsPath = Path.Combine(folder, "events.json");
        var resultPath = Path.Combine(folder, "result.json");
        if (!File.Exists(faultsPath) || !File.Exists(eventsPath) || !File.Exists(resultPath))
        {
            return;
        }

        var faults = JsonSerializer.Deserialize<List<FaultRecord>>(File.ReadAllText(faultsPath), ChaosResult.Json) ?? [];
        var events = JsonSerializer.Deserialize<List<Hosting.EventView>>(File.ReadAllText(eventsPath), ChaosResult.Json) ?? [];
        var result = JsonSerializer.Deserialize<ChaosResult>(File.ReadAllText(resultPath), ChaosResult.Json);
        if (result is null || result.StartedAt is not { } started)
        {
            return;
        }

        var promotions = events.Where(e => e.Kind == "Promoted" && e.At >= started).Select(e => ((long)(e.At - started).TotalMicroseconds, e.Epoch, e.Member ?? string.Empty)).ToList();
        TimelinePlot.Write(history.Operations, faults, promotions, result, Path.Combine(folder, "timeline"));
    }

    private static void Report(ChaosResult r, bool json)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(r, ChaosResult.Json));
            return;
        }

        var table = new Table().Border(TableBorder.Rounded).HideHeaders().AddColumn("what").AddColumn("value");
        void Row(string what, string value) => table.AddRow(Markup.Escape(what), value);
        Row("faults", $"{r.Faults} ({string.Join(", ", r.FaultsByKind.Select(k => $"{k.Key} {k.Value}"))})");
        Row("operations", r.Operations.ToString(CultureInfo.InvariantCulture));
        Row("acknowledged calls", r.Acknowledged.ToString(CultureInfo.InvariantCulture));
        Row("failed / unknown", $"{r.Failed} / {r.Indeterminate}");
        Row("lost", r.Lost == 0 ? "[green]0[/]" : $"[red]{r.Lost}[/]");
        Row("duplicated", r.Duplicated == 0 ? "[green]0[/]" : $"[red]{r.Duplicated}[/]");
        Row("order / read / epoch violations", $"{r.OrderViolations} / {r.ReadViolations} / {r.EpochViolations}");
        Row("failovers", r.Failovers.ToString(CultureInfo.InvariantCulture));
        Row("unavailable per fault", $"p50 {r.UnavailableMs.P50:0.0} ms · p99 {r.UnavailableMs.P99:0.0} ms · max {r.UnavailableMs.Max:0.0} ms");
        Row("run folder", Markup.Escape(r.RunFolder ?? string.Empty) + " (history.jsonl, timeline.png/svg, logs/)");
        AnsiConsole.Write(table);
        foreach (var v in r.Violations.Take(20))
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(v)}[/]");
        }

        AnsiConsole.MarkupLine(r.Verdict == "valid" ? "verdict: [green bold]valid[/]" : "verdict: [red bold]INVALID[/]");
    }
}

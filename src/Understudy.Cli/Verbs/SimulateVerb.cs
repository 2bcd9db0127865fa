using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Understudy.Cli.Infrastructure;
using Understudy.Simulation;

namespace Understudy.Cli.Verbs;

/// <summary>`understudy simulate`: the protocol core through thousands of seeded fault schedules.</summary>
internal static class SimulateVerb
{
    public static Command Create()
    {
        var seeds = new Option<int>("--seeds") { Description = "How many seeds (fault schedules) to run.", DefaultValueFactory = _ => 1000 };
        var fromSeed = new Option<int>("--from-seed") { Description = "The first seed of the sweep.", DefaultValueFactory = _ => 1 };
        var seed = new Option<int?>("--seed") { Description = "Replay this one seed (with --trace, print its event trace)." };
        var trace = new Option<bool>("--trace") { Description = "With --seed: print every event of the run." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (seeds, faults by kind, operations, acknowledged, violations)." };
        var parallel = new Option<int>("--parallel") { Description = "Seeds run at once (default: one per core).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var duration = new Option<double>("--duration") { Description = "Simulated seconds of workload and faults per seed.", DefaultValueFactory = _ => 5 };
        var servers = new Option<int>("--servers") { Description = "Servers per simulated cluster.", DefaultValueFactory = _ => 3 };
        var clients = new Option<int>("--clients") { Description = "Client workers per simulated cluster.", DefaultValueFactory = _ => 3 };
        var monitors = new Option<int>("--monitors") { Description = "Monitors per simulated cluster: 1 (one monitor over a file) or a group of 3 or 5 with a modelled coordinator, whose faults (crash, pause and partition of the active monitor, of a follower, of a majority; an isolated former active monitor beside a new one; monitor clock drift) join the schedule.", DefaultValueFactory = _ => 1 };
        var stateMachine = new Option<string>("--state-machine") { Description = "The replicated service and its workload: messages (appends, reads, counts, judged against the final log) or kv (gets, puts, deletes, compare-and-sets and increments over a few shared keys, judged by the linearizability checker).", DefaultValueFactory = _ => "messages" };
        stateMachine.AcceptOnlyFromAmong("messages", "kv");
        var keys = new Option<int>("--keys") { Description = "With --state-machine kv: registers and as many counters the clients share (few, so calls conflict).", DefaultValueFactory = _ => 3 };
        var traceHashes = new Option<string?>("--trace-hashes") { Description = "Write one line per seed, `seed hash`, hashing its whole event trace: to show that a refactoring changed no behaviour, compare the files of two builds." };
        var command = new Command("simulate", "Run the replication protocol through seeded fault schedules (crashes, restarts, pauses, partitions, message loss, duplication, reordering, lost disk writes, monitor crashes; with --monitors 3 or 5 the monitor group's faults too) in a deterministic simulation, and check every history and that no two servers ever hold a primary's lease at once.")
        {
            seeds, fromSeed, seed, trace, json, parallel, duration, servers, clients, monitors, traceHashes, stateMachine, keys,
        };

        command.SetAction((parse, cancellationToken) =>
        {
            if (parse.GetValue(duration) is var d && (double.IsNaN(d) || d <= 0 || d > 86_400))
            {
                throw new UsageException($"--duration is {d}: expected simulated seconds above 0 and at most 86400");
            }

            var settings = new SimulationOptions
            {
                Duration = TimeSpan.FromSeconds(parse.GetValue(duration)),
                Servers = parse.GetValue(servers),
                Clients = parse.GetValue(clients),
                Monitors = parse.GetValue(monitors),
                TraceHash = parse.GetValue(traceHashes) is not null,
                StateMachine = parse.GetValue(stateMachine) == "kv" ? SimulatedStateMachine.KeyValue : SimulatedStateMachine.Messages,
                Keys = parse.GetValue(keys),
            };
            if (settings.Servers is < 1 or > 9 || settings.Clients is < 1 or > 64 || settings.Duration <= TimeSpan.Zero)
            {
                throw new UsageException("--servers must be 1 to 9, --clients 1 to 64 and --duration a positive number of seconds");
            }

            if (settings.Keys is < 1 or > 1000)
            {
                throw new UsageException($"--keys is {settings.Keys}: expected 1 to 1000");
            }

            if (settings.Monitors is not (1 or 3 or 5))
            {
                throw new UsageException($"--monitors is {settings.Monitors}: expected 1, 3 or 5");
            }

            if (parse.GetValue(seed) is { } one)
            {
                return Task.FromResult(RunOne(settings with { Seed = one, Trace = parse.GetValue(trace) }, parse.GetValue(json)));
            }

            var count = parse.GetValue(seeds);
            if (count < 1)
            {
                throw new UsageException($"--seeds is {count}: expected at least 1");
            }

            return Task.FromResult(RunSweep(settings, parse.GetValue(fromSeed), count, parse.GetValue(parallel), parse.GetValue(json), parse.GetValue(traceHashes), cancellationToken));
        });
        return command;
    }

    private static string Replay(SimulationOptions options, int seed) =>
        $"./understudy simulate --seed {seed} --trace" + (options.StateMachine == SimulatedStateMachine.KeyValue ? $" --state-machine kv --keys {options.Keys}" : string.Empty);

    private static string StateMachineText(SimulationOptions options) =>
        options.StateMachine == SimulatedStateMachine.KeyValue ? $"key-value store over {options.Keys} register(s) and {options.Keys} counter(s)" : "message store";

    private static string Acknowledged(SimulationOptions options) => options.StateMachine == SimulatedStateMachine.KeyValue ? "calls" : "appends";

    private static string MonitorText(int monitors) => monitors == 1 ? "one monitor" : $"a group of {monitors} monitors";

    private static int RunOne(SimulationOptions options, bool json)
    {
        var result = Simulator.Run(options);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                seed = result.Seed,
                valid = result.Valid,
                faults = result.Faults,
                operations = result.Stats.Operations,
                acknowledged = result.Stats.Acknowledged,
                finalLength = result.FinalLog.Count,
                events = result.Events,
                violations = result.Violations.Select(v => new { kind = v.Kind.ToString(), detail = v.Detail }),
            }));
            return result.Valid ? 0 : 1;
        }

        foreach (var line in result.Trace)
        {
            Console.WriteLine(line);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seed {result.Seed}: {result.Stats.Operations} operations, {result.Stats.Acknowledged} acknowledged {Acknowledged(options)}, final log {result.FinalLog.Count}, {result.Events} events, {result.SimulatedMs} ms simulated"));
        Console.WriteLine("faults: " + string.Join(", ", result.Faults.Select(f => $"{f.Key}={f.Value}")));
        foreach (var v in result.Violations)
        {
            Console.WriteLine($"VIOLATION {v.Kind}: {v.Detail}");
        }

        Console.WriteLine(result.Valid ? "verdict: valid" : "verdict: INVALID");
        return result.Valid ? 0 : 1;
    }

    private static int RunSweep(SimulationOptions settings, int from, int count, int parallel, bool json, string? traceHashFile, CancellationToken cancellationToken)
    {
        var lastPrint = DateTime.UtcNow;
        var result = Simulator.Sweep(
            from,
            count,
            s => settings with { Seed = s },
            Math.Max(1, parallel),
            (done, r) =>
            {
                if (!json && (DateTime.UtcNow - lastPrint > TimeSpan.FromSeconds(1) || done == count))
                {
                    lastPrint = DateTime.UtcNow;
                    Console.Error.Write($"\r{done}/{count} seeds");
                }
            },
            cancellationToken: cancellationToken);

        if (traceHashFile is not null)
        {
            File.WriteAllLines(traceHashFile, result.TraceHashes.Select(h => string.Create(CultureInfo.InvariantCulture, $"{h.Seed} {h.Hash:x16}")));
        }

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                seeds = result.Seeds,
                fromSeed = result.FromSeed,
                faults = result.Faults,
                faultTotal = result.Faults.Values.Sum(),
                operations = result.Operations,
                acknowledged = result.Acknowledged,
                events = result.Events,
                elapsedSeconds = Math.Round(result.ElapsedSeconds, 1),
                violations = result.Violations.Select(v => new { seed = v.Seed, kind = v.Kind.ToString(), detail = v.Detail, replay = Replay(settings, v.Seed) }),
            }));
            return result.Violations.Count == 0 ? 0 : 1;
        }

        Console.Error.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{result.Seeds} seeds from {result.FromSeed} ({MonitorText(settings.Monitors)}, {StateMachineText(settings)}) in {result.ElapsedSeconds:0.0} s: {result.Operations} operations, {result.Acknowledged} acknowledged {Acknowledged(settings)}, {result.Events} events"));
        Console.WriteLine("faults injected:");
        foreach (var (kind, n) in result.Faults)
        {
            Console.WriteLine($"  {kind,-30} {n,10}");
        }

        foreach (var v in result.Violations.Take(50))
        {
            Console.WriteLine($"VIOLATION seed {v.Seed} {v.Kind}: {v.Detail}");
            Console.WriteLine($"  replay: {Replay(settings, v.Seed)}");
        }

        Console.WriteLine(result.Violations.Count == 0 ? "verdict: no violations" : $"verdict: {result.Violations.Count} violation(s) in {result.FailingSeeds.Count} seed(s)");
        return result.Violations.Count == 0 ? 0 : 1;
    }
}

using System.Diagnostics;
using System.Text.Json;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Client;
using Understudy.Core.StateMachines;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Processes;
using Understudy.Orchestration.Workloads;

namespace Understudy.Orchestration.Chaos;
/// <summary>
/// Runs a scenario against a real local cluster: client workers record a Jepsen-style history while faults
/// are injected; then everything is healed, the log is read back and the history checker gives the verdict.
/// </summary>
public sealed partial class ChaosRunner : IAsyncDisposable
{
    private static readonly string[] MixedKinds = ["kill-primary", "kill-backup", "kill-primary-and-backup", "chain", "random", "kill-all", "pause", "monitor", "partition"];

    /// <summary>The monitor group's kinds: they join mixed when the cluster has three monitors.</summary>
    private static readonly string[] GroupKinds = ["monitor-leader", "monitor-majority", "monitor-partition"];

    private readonly ChaosOptions _options;
    private readonly Action<string> _say;
    private readonly Random _random;
    private readonly List<FaultRecord> _faults = [];
    private readonly Dictionary<string, EventView> _events = [];

    /// <summary>Safety rules a fault checks as it goes (nothing promoted without a quorum...), broken ones here.</summary>
    private readonly List<string> _broken = [];
    private LocalCluster _cluster = null!;
    private Workload _workload = null!;
    private NamespaceNetwork? _network;
    private DateTimeOffset _startedUtc;
    private string? _aborted;

    public ChaosRunner(ChaosOptions options, Action<string> say)
    {
        _options = options;
        _say = say;
        _random = new Random(options.Seed);
    }

    public static string Name(ChaosScenario s) => s switch
    {
        ChaosScenario.KillPrimary => "kill-primary",
        ChaosScenario.KillBackup => "kill-backup",
        ChaosScenario.KillPrimaryAndBackup => "kill-primary-and-backup",
        ChaosScenario.KillAll => "kill-all",
        ChaosScenario.MonitorLeader => "monitor-leader",
        ChaosScenario.MonitorPartition => "monitor-partition",
        ChaosScenario.MonitorMajority => "monitor-majority",
        _ => s.ToString().ToLowerInvariant(),
    };

    public async Task<ChaosResult> RunAsync(CancellationToken cancellationToken)
    {
        if (_options.Schedule?.FirstOrDefault(k => !MixedKinds.Contains(k) && !GroupKinds.Contains(k) && k != "monitor-loss") is { } unknown)
        {
            throw new ArgumentException($"unknown fault kind '{unknown}' in the schedule; kinds are {string.Join(", ", MixedKinds.Concat(GroupKinds))}, monitor-loss", nameof(cancellationToken));
        }

        if (_options.MonitorCount is not (1 or 3 or 5))
        {
            throw new ArgumentException($"a monitor group has 1, 3 or 5 monitors, not {_options.MonitorCount}", nameof(cancellationToken));
        }

        if (_options.MonitorCount < 3 && (_options.Scenario is ChaosScenario.MonitorLeader or ChaosScenario.MonitorPartition or ChaosScenario.MonitorMajority || _options.Schedule?.Any(GroupKinds.Contains) == true))
        {
            throw new ArgumentException("the monitor-group faults need a group of 3 or 5 monitors", nameof(cancellationToken));
        }

        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(_options.RunFolder);
        var usesNamespaces = _options.Scenario is ChaosScenario.Partition or ChaosScenario.MonitorPartition
            || (_options.Schedule?.Any(k => k is "partition" or "monitor-partition") ?? false)
            || (_options.Scenario == ChaosScenario.Mixed && NamespaceNetwork.Unsupported() is null);
        try
        {
            _cluster = new LocalCluster(ClusterOptions(usesNamespaces));
            await _cluster.StartHealthyAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);

            _say($"cluster up: monitor(s) {string.Join(", ", _cluster.MonitorAddresses)}, servers {string.Join(", ", _cluster.Servers.Select(s => s.Address))}{(usesNamespaces ? " (each in its own network namespace)" : string.Empty)}");
            _startedUtc = DateTimeOffset.UtcNow;
            _workload = new Workload(_cluster.MonitorAddresses, new WorkloadOptions { Workers = _options.Clients, RequestTimeout = TimeSpan.FromSeconds(10), ReadPercent = _options.ReadPercent, Clients = _options.Clients, StateMachine = _options.StateMachine });
            await _workload.WaitForPrimaryAsync(cancellationToken).ConfigureAwait(false);
            _workload.Start();
            using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var eventPoller = PollEventsAsync(watching.Token);
            await Task.Delay(700, cancellationToken).ConfigureAwait(false);

            var faults = _options.Schedule?.Count ?? _options.Faults;
            for (var i = 1; i <= faults && _aborted is null; i++)
            {
                var kinds = MixedKinds.Concat(_cluster.Monitors.Count >= 3 ? GroupKinds : [])
                    .Where(k => k is not ("partition" or "monitor-partition") || _network is not null).ToArray();
                var kind = _options.Schedule is { } schedule ? schedule[i - 1]
                    : _options.Scenario == ChaosScenario.Mixed ? kinds[_random.Next(kinds.Length)] : Name(_options.Scenario);
                var before = _faults.Count;

                // Each fault is bounded: one that cannot recover ends the run, invalid and saying why, rather than
                // leaving it waiting on a cluster that will never come back.
                using var faultDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                faultDeadline.CancelAfter(_options.FaultTimeout);
                try
                {
                    await InjectAsync(kind, faultDeadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    Abort($"fault {i}/{faults} ({kind}) did not recover within {_options.FaultTimeout.TotalSeconds:0.#} s");
                }
                catch (TimeoutException e)
                {
                    Abort($"fault {i}/{faults} ({kind}): {e.Message}");
                }
                catch (ChildProcessStartException e)
                {
                    // A restart that did not happen: carrying on would only wait on a process that is not there.
                    Abort($"fault {i}/{faults} ({kind}): {e.Message}");
                }
                catch (InvalidOperationException e)
                {
                    // The cluster did not recover from the last fault: the next fault could not even be chosen.
                    Abort($"before fault {i}/{faults} ({kind}): {e.Message}");
                }

                foreach (var f in _faults.Skip(before))
                {
                    _say($"fault {i}/{faults}: {f.Kind} — {f.Detail} ({_workload.Recorder.Acknowledged} acknowledged so far)");
                }

                if (_aborted is null)
                {
                    await Task.Delay(300 + _random.Next(500), cancellationToken).ConfigureAwait(false);
                }
            }

            _say("healing everything and letting the clients finish…");
            IReadOnlyList<string>? finalLog = null;
            string? readError = null;

            // The heal, the clients' last calls and the read-back are bounded together, as each fault is.
            using (var final = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                final.CancelAfter(_options.FinalTimeout);
                try
                {
                    (finalLog, readError) = await HealAndReadBackAsync(final.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    readError = $"the final heal and read-back did not finish within {_options.FinalTimeout.TotalSeconds:0.#} s";
                }

                await watching.CancelAsync().ConfigureAwait(false);
                await eventPoller.ConfigureAwait(false);
            }

            return Finish(finalLog, readError, watch.Elapsed);
        }
        finally
        {
            await DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task<(IReadOnlyList<string>? FinalLog, string? ReadError)> HealAndReadBackAsync(CancellationToken ct)
    {
        try
        {
            Heal();
        }
        catch (ChildProcessStartException e)
        {
            return (null, $"the final heal failed: {e.Message}");
        }

        var healthy = await _cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        await Task.Delay(500, ct).ConfigureAwait(false);
        await _workload.StopAsync(ct).ConfigureAwait(false);
        await PollEventsOnceAsync(ct).ConfigureAwait(false);
        if (healthy is null)
        {
            return (null, "the cluster did not recover within 30 s after every fault was healed");
        }

        var reader = new UnderstudyClient(new UnderstudyClientOptions { Monitors = _cluster.MonitorAddresses, Retry = new Core.Client.ClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) } });
        await using var readerScope = reader.ConfigureAwait(false);
        if (KeyValue)
        {
            // A get of every key, in the history: an acknowledged write lost in a failover contradicts what these read.
            foreach (var key in KeyValueCalls.AllKeys(_workload.Options.Keys))
            {
                var done = await _workload.Recorder.KeyValueAsync(reader, KeyValueCalls.Get(-1, key), ct).ConfigureAwait(false);
                if (done.Outcome != KvOutcome.Ok)
                {
                    return (null, $"the final get of {key} failed");
                }
            }

            return ([], null);
        }

        try
        {
            return ([.. (await reader.ReadAllAsync(ct).ConfigureAwait(false)).Select(m => m.Text)], null);
        }
        catch (UnderstudyException e)
        {
            return (null, $"the final read failed: {e.Message}");
        }
    }

    private bool KeyValue => _options.StateMachine == BuiltInStateMachine.Kv;

    private void Abort(string reason)
    {
        _aborted ??= reason;
        _say($"run aborted: {reason}");
    }

    /// <summary>
    /// The synchronous last resort for a run being stopped by a signal, whether or not it is stuck: kills every
    /// process and removes the namespaces and the bridge at once, without waiting for anything the run is waiting
    /// on. Idempotent, safe from any thread; the run's own disposal after it finds nothing left to do.
    /// </summary>
    public void Teardown()
    {
        // Processes first (a namespace lives on, nameless, while a process is in it), without waiting for them: the
        // process may be made to exit soon after the handler returns, and the namespaces must be gone by then.
        if (Volatile.Read(ref _cluster) is { } cluster)
        {
            foreach (var m in cluster.Monitors)
            {
                m.Process.KillNow();
            }
            foreach (var s in cluster.Servers)
            {
                s.Process.KillNow();
            }
        }

        Volatile.Read(ref _network)?.Dispose();
    }

    /// <summary>Stops the clients, kills every process and removes the namespaces (idempotent).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_workload is not null)
        {
            await _workload.DisposeAsync().ConfigureAwait(false);
            _workload = null!;
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync().ConfigureAwait(false);
            _cluster = null!;
        }

        _network?.Dispose();
        _network = null;
    }

    private LocalClusterOptions ClusterOptions(bool namespaces)
    {
        var data = Path.Combine(_options.RunFolder, "data");
        if (!namespaces)
        {
            return LocalClusterOptions.OnFreePorts(_options.Servers, data, monitorHttp: true, monitors: _options.MonitorCount) with
            {
                Fsync = _options.Fsync,
                StateMachine = _options.StateMachine,
                ServerArguments = ["--log-level", "warning"],
                MonitorArguments = ["--log-level", "info"],
            };
        }

        if (NamespaceNetwork.Unsupported() is { } why)
        {
            throw new ChaosUnsupportedException(why);
        }

        // LocalCluster names a group of one's monitor "monitor", a group's "monitor1"...: each gets its own namespace.
        var monitorNames = _options.MonitorCount == 1 ? ["monitor"] : Enumerable.Range(1, _options.MonitorCount).Select(n => $"monitor{n}").ToList();
        List<string> names = [.. monitorNames, .. Enumerable.Range(1, _options.Servers).Select(n => $"server{n}")];
        _network = NamespaceNetwork.Create(names);
        var network = _network;
        return new LocalClusterOptions
        {
            Servers = _options.Servers,
            Monitors = _options.MonitorCount,
            MonitorHost = network.AddressOf(monitorNames[0]),
            MonitorHosts = [.. monitorNames.Select(network.AddressOf)],
            ServerHosts = [.. Enumerable.Range(1, _options.Servers).Select(n => network.AddressOf($"server{n}"))],
            HttpPort = 0,
            ServerHttp = false,
            DataDirectory = data,
            Fsync = _options.Fsync,
            StateMachine = _options.StateMachine,
            Launcher = network.Launcher,
            ServerArguments = ["--log-level", "warning"],
            MonitorArguments = ["--log-level", "info"],
        };
    }

    private async Task PollEventsAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await PollEventsOnceAsync(ct).ConfigureAwait(false);
                await Task.Delay(400, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task PollEventsOnceAsync(CancellationToken ct)
    {
        try
        {
            foreach (var e in await _cluster.EventsAsync(ct).ConfigureAwait(false))
            {
                // A restarted monitor numbers its events afresh: key them by content.
                _events.TryAdd($"{e.At:O}|{e.Kind}|{e.Member}|{e.Detail}", e);
            }
        }
        catch (UnderstudyException)
        {
            // The monitor is down right now (a fault); the next poll catches up.
        }
    }

    // ------------------------------------------------------------------ verdict

    private ChaosResult Finish(IReadOnlyList<string>? finalLog, string? readError, TimeSpan elapsed)
    {
        var history = _workload.Recorder.History;
        var check = KeyValue ? JudgeKeyValueHistory() : finalLog is null ? null : HistoryChecker.Check(history, finalLog);
        long Micros(DateTimeOffset at) => (long)(at - _startedUtc).TotalMicroseconds;
        var promotions = _events.Values.Where(e => e.Kind == "Promoted" && e.At >= _startedUtc).OrderBy(e => e.At).ToList();
        var unavailable = new List<double>();
        foreach (var f in _faults)
        {
            var promoted = promotions.Any(p => Micros(p.At) >= f.Start && Micros(p.At) <= f.End + 1_000_000);
            var gap = _workload.Recorder.UnavailableMs(f.Start, promoted ? _workload.Recorder.EpochAt(f.Start) : null);
            if (!double.IsNaN(gap))
            {
                unavailable.Add(gap);
            }
        }

        var violations = new List<Violation>(check?.Violations ?? []);
        if (readError is not null)
        {
            violations.Add(new Violation(ViolationKind.NoRecovery, readError));
        }

        // A fault that did not recover in time, or a process that could not be restarted, is an availability
        // failure worth a loud verdict.
        if (_aborted is not null)
        {
            violations.Add(new Violation(ViolationKind.NoRecovery, _aborted));
        }

        violations.AddRange(_broken.Select(b => new Violation(ViolationKind.Invariant, b)));

        var stats = check?.Stats ?? new CheckStats { Operations = history.Operations.Count(o => o.Type == OpType.Invoke) };
        var result = new ChaosResult
        {
            Scenario = Name(_options.Scenario),
            Seed = _options.Seed,
            Faults = _faults.Count,
            FaultsByKind = _faults.GroupBy(f => f.Kind).OrderBy(g => g.Key).ToDictionary(g => g.Key, g => g.Count()),
            Operations = stats.Operations,
            Acknowledged = stats.Acknowledged,
            Failed = stats.Failed,
            Indeterminate = stats.Indeterminate,
            Lost = stats.Lost,
            Duplicated = stats.Duplicated,
            OrderViolations = stats.OrderViolations,
            ReadViolations = stats.ReadViolations,
            EpochViolations = stats.EpochViolations,
            FinalLength = finalLog?.Count ?? 0,
            Failovers = promotions.Count,
            Monitors = _cluster.Monitors.Count,
            LeaseRefused = _workload.Recorder.LeaseRefused,
            UnavailableMs = Percentiles.Of(unavailable),
            Verdict = violations.Count == 0 ? "valid" : "invalid",
            Violations = [.. violations.Select(v => v.ToString())],
            Aborted = _aborted,
            RunFolder = _options.RunFolder,
            StartedAt = _startedUtc,
            ElapsedSeconds = Math.Round(elapsed.TotalSeconds, 1),
        };

        File.WriteAllText(Path.Combine(_options.RunFolder, "history.jsonl"), KeyValue ? _workload.Recorder.KeyValueHistory.ToJsonLines() : history.ToJsonLines());
        if (finalLog is not null)
        {
            File.WriteAllLines(Path.Combine(_options.RunFolder, "final-log.txt"), finalLog);
        }

        File.WriteAllText(Path.Combine(_options.RunFolder, "faults.json"), JsonSerializer.Serialize(_faults, ChaosResult.Json));
        File.WriteAllText(Path.Combine(_options.RunFolder, "events.json"), JsonSerializer.Serialize(_events.Values.OrderBy(e => e.At), ChaosResult.Json));
        File.WriteAllText(Path.Combine(_options.RunFolder, "result.json"), JsonSerializer.Serialize(result, ChaosResult.Json));
        TimelinePlot.Write(history.Operations, _faults, promotions.Select(p => (Micros(p.At), p.Epoch, p.Member ?? string.Empty)).ToList(), result, Path.Combine(_options.RunFolder, "timeline"));
        return result;
    }

    /// <summary>
    /// With the key-value store: the calls judged by the linearizability checker (the final gets included). A key the
    /// checker could not decide within its budget counts against the run: an undecided history proves nothing.
    /// </summary>
    private CheckResult JudgeKeyValueHistory()
    {
        var calls = _workload.Recorder.KeyValueHistory.Operations;
        var result = LinearizabilityChecker.Check(calls, new LinearizabilityOptions { Budget = TimeSpan.FromSeconds(60) });
        File.WriteAllText(Path.Combine(_options.RunFolder, "linearizability.txt"), result.Describe() + Environment.NewLine);
        var violations = result.Keys.Where(k => k.Verdict != LinearizabilityVerdict.Linearizable)
            .Select(k => new Violation(ViolationKind.NotLinearizable, k.Verdict == LinearizabilityVerdict.Unknown ? $"key {k.Key}: undecided within the checker's budget ({k.Operations} operations)" : k.ToString()))
            .ToList();
        return new CheckResult(violations, new CheckStats
        {
            Operations = calls.Count,
            Acknowledged = calls.Count(o => o.Outcome == KvOutcome.Ok),
            Failed = calls.Count(o => o.Outcome == KvOutcome.Failed),
            Indeterminate = calls.Count(o => o.Outcome == KvOutcome.Unknown),
            Reads = calls.Count(o => o.Function == KvFunction.Get),
        });
    }
}

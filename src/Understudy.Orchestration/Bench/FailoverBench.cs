using System.Collections.Concurrent;
using System.Text.Json;
using Understudy.Checking;
using Understudy.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Workloads;
using Understudy.Protocol;

namespace Understudy.Orchestration.Bench;

/// <summary>What one failover run does.</summary>
public sealed record FailoverOptions
{
    public int Rounds { get; init; } = 10;

    /// <summary>
    /// kill (SIGKILL), pause (SIGSTOP until a new primary serves, then SIGCONT), kill-backup (SIGKILL a backup),
    /// kill-monitor (SIGKILL the active monitor, the primary untouched: the write stall while the group finds a new
    /// one) or kill-primary-and-monitor (SIGKILL the active monitor and the primary at once).
    /// </summary>
    public string Fault { get; init; } = "kill";

    /// <summary>The monitor group's size: 1 (the file store) or 3 (Raft), to compare the two in one sitting.</summary>
    public int Monitors { get; init; } = 1;

    /// <summary>Closed-loop writers recording the history (their acks time the gap).</summary>
    public int Clients { get; init; } = 4;

    public string Fsync { get; init; } = "always";

    public int Servers { get; init; } = 3;

    /// <summary>
    /// The primary's lease the monitors grant (their <c>--lease-ms</c>); null keeps the monitor's default. A monitor
    /// failover costs clients nothing only when it completes within the lease, so kill-monitor is worth measuring
    /// at more than one lease.
    /// </summary>
    public int? LeaseMs { get; init; }

    /// <summary>Keep the servers' stores in the run folder after a run that passed (they are deleted by default; a failed run keeps them).</summary>
    public bool KeepData { get; init; }

    public required string RunFolder { get; init; }
}

/// <summary>
/// Repeated failovers of a local cluster under a steady write load: each round waits for full health (every
/// server in sync), faults the primary, waits for the first acknowledgement from the new epoch, then restarts
/// (or resumes) the old primary. The gap each round is the client's: the last ack before the fault to the
/// first ack from the new primary. At the end the whole history is judged against the log read back.
/// </summary>
public sealed class FailoverBench
{
    private readonly FailoverOptions _options;
    private readonly Action<string> _say;

    // Every switch of primary any writer's client made, with the monitor it was subscribed to then.
    private readonly ConcurrentQueue<PrimaryLearned> _learned = new();

    public FailoverBench(FailoverOptions options, Action<string> say)
    {
        _options = options;
        _say = say;
    }

    public async Task<FailoverResult> RunAsync(CancellationToken cancellationToken)
    {
        var result = await MeasureAsync(cancellationToken).ConfigureAwait(false);
        ServerStores.DropAfterPassing(Path.Combine(_options.RunFolder, "data"), result.Verdict == "valid", _options.KeepData);
        return result;
    }

    private async Task<FailoverResult> MeasureAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_options.RunFolder);
        var loadBefore = BenchJson.LoadAverage();
        if (_options.Monitors is not (1 or 3 or 5))
        {
            throw new ArgumentOutOfRangeException(nameof(cancellationToken), $"a monitor group has 1, 3 or 5 monitors, not {_options.Monitors}");
        }

        var cluster = new LocalCluster(LocalClusterOptions.OnFreePorts(_options.Servers, Path.Combine(_options.RunFolder, "data"), monitors: _options.Monitors) with
        {
            Fsync = _options.Fsync,
            // Info: the servers' role changes, with times, show where each failover's time went.
            ServerArguments = ["--log-level", "info"],
            MonitorArguments = _options.LeaseMs is { } lease ? ["--log-level", "info", "--lease-ms", lease.ToString(System.Globalization.CultureInfo.InvariantCulture)] : ["--log-level", "info"],
        });
        await using var clusterScope = cluster.ConfigureAwait(false);
        await cluster.StartHealthyAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);

        var workload = new Workload(cluster.MonitorAddresses, new WorkloadOptions { Workers = _options.Clients, RequestTimeout = TimeSpan.FromSeconds(30), Clients = _options.Clients });
        await using var workloadScope = workload.ConfigureAwait(false);
        await workload.WaitForPrimaryAsync(cancellationToken).ConfigureAwait(false);
        foreach (var client in workload.Clients)
        {
            client.PrimaryChanged += (_, e) => _learned.Enqueue(new PrimaryLearned(DateTimeOffset.UtcNow, e.Epoch, e.Source, client.ConnectedMonitor));
        }

        workload.Start();
        var rounds = new List<FailoverRound>();
        var violations = new List<string>();
        for (var r = 1; r <= _options.Rounds; r++)
        {
            var round = await RoundAsync(cluster, workload, r, cancellationToken).ConfigureAwait(false);
            if (round is null)
            {
                violations.Add($"round {r}: no new primary served within 30 s");
                break;
            }

            rounds.Add(round);
            _say($"round {r}/{_options.Rounds}: {round.Fault} {round.OldPrimary} -> {round.NewPrimary}{(round.Monitor is { } m ? $" (active monitor {m} killed)" : string.Empty)}: unavailable {round.UnavailableMs:0.0} ms (detected {Show(round.DetectedMs)}, promoted {Show(round.PromotedMs)}, learned {Show(round.LearnedMs)}{(round.LearnedFrom is { } from ? $" from the {from}" : string.Empty)}, first ack {Show(round.FirstAckMs)} after the fault)");
        }

        if (await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false) is null)
        {
            violations.Add("the cluster did not recover within 30 s after the last round");
        }

        await Task.Delay(300, cancellationToken).ConfigureAwait(false);
        await workload.StopAsync(cancellationToken).ConfigureAwait(false);

        CheckResult? check = null;
        var reader = new UnderstudyClient(new UnderstudyClientOptions { Monitors = cluster.MonitorAddresses, Retry = new Core.Client.ClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) } });
        await using (reader.ConfigureAwait(false))
        {
            try
            {
                var finalLog = (await reader.ReadAllAsync(cancellationToken).ConfigureAwait(false)).Select(m => m.Text).ToList();
                check = HistoryChecker.Check(workload.Recorder.History, finalLog);
                File.WriteAllLines(Path.Combine(_options.RunFolder, "final-log.txt"), finalLog);
            }
            catch (UnderstudyException e)
            {
                violations.Add($"the final read failed: {e.Message}");
            }
        }

        File.WriteAllText(Path.Combine(_options.RunFolder, "history.jsonl"), workload.Recorder.History.ToJsonLines());
        violations.AddRange(check?.Violations.Select(v => v.ToString()) ?? []);
        var gaps = rounds.Select(x => x.UnavailableMs).ToList();
        var result = new FailoverResult
        {
            Rounds = rounds.Count,
            Fault = _options.Fault,
            Monitors = _options.Monitors,
            LeaseRefused = workload.Recorder.LeaseRefused,
            Failed = workload.Recorder.Failed,
            UnavailableMs = UnavailableMs.Of(gaps),
            Lost = check?.Stats.Lost ?? -1,
            Duplicated = check?.Stats.Duplicated ?? -1,
            Verdict = violations.Count == 0 ? "valid" : "invalid",
            Acknowledged = check?.Stats.Acknowledged ?? 0,
            Clients = _options.Clients,
            Fsync = _options.Fsync,
            OverOneSecond = gaps.Count(g => g > 1000),
            Samples = rounds,
            Violations = [.. violations.Take(50)],
            LoadBefore = loadBefore,
            LoadAfter = BenchJson.LoadAverage(),
            RunFolder = _options.RunFolder,
        };
        File.WriteAllText(Path.Combine(_options.RunFolder, "result.json"), JsonSerializer.Serialize(result, BenchJson.Options));
        BenchPlots.FailoverRounds(result, Path.Combine(_options.RunFolder, "failover"));
        return result;
    }

    // Every monitor runs, answers its own status, reaches a quorum and names the same active monitor.
    private static async Task<bool> GroupIsWholeAsync(LocalCluster cluster, CancellationToken ct)
    {
        string? active = null;
        foreach (var monitor in cluster.Monitors)
        {
            if (!monitor.Process.Running)
            {
                return false;
            }

            var alone = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [monitor.Client] });
            await using var scope = alone.ConfigureAwait(false);
            try
            {
                var response = await alone.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                var group = MonitorGroupView.FromStatusJson(response.Body.Span);
                if (group is not { HasQuorum: true, Active: { } named } || (active is not null && active != named))
                {
                    return false;
                }

                active = named;
            }
            catch (UnderstudyException)
            {
                return false;
            }
        }

        return true;
    }

    private static string Show(double? ms) => ms is { } v ? $"{v:0.0} ms" : "?";

    private async Task<FailoverRound?> RoundAsync(LocalCluster cluster, Workload workload, int round, CancellationToken ct)
    {
        if (await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false) is null)
        {
            _say($"round {round}: the cluster is not fully in sync after 30 s; faulting anyway");
        }

        // Steady load on a healthy cluster before the fault (the peers' scripts give theirs 2 s), then make sure it
        // is still healthy: faulting a primary that is in sync alone would measure no failover at all.
        await Task.Delay(1000, ct).ConfigureAwait(false);
        var status = await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false)
            ?? await cluster.WaitForAsync(s => s.Phase == "Stable" && s.Primary is not null, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false)
            ?? throw new InvalidOperationException("no stable primary");
        if (_options.Fault is "kill-monitor" or "kill-primary-and-monitor" && _options.Monitors > 1)
        {
            // The monitor killed in the last round may still be starting (a restarted process takes a second or more
            // on a loaded machine, then waits out an election timeout before it joins). Killing the active monitor
            // while another is down kills a majority, which is what chaos monitor-majority measures, not a monitor
            // failover: wait until every member is running and each one follows the same active monitor with a
            // quorum (asked one by one: a follower knows the other followers only as unreachable).
            var whole = await Poll.TryForAsync(
                t => GroupIsWholeAsync(cluster, t),
                whole => whole,
                TimeSpan.FromSeconds(30),
                TimeSpan.FromMilliseconds(50),
                ct).ConfigureAwait(false);
            if (!whole)
            {
                _say($"round {round}: the monitor group is not whole after 30 s; faulting anyway");
            }
        }

        // kill-backup: the primary stays; the writes stall until it has the dead backup out of the in-sync set.
        var backupFault = _options.Fault == "kill-backup";

        // kill-monitor: the primary stays too; the writes stall only if its lease runs out before a new active
        // monitor renews it. The gap is then the longest pause between acknowledgements around the fault.
        var monitorOnly = _options.Fault == "kill-monitor";
        var monitorFault = monitorOnly || _options.Fault == "kill-primary-and-monitor";
        var primary = backupFault
            ? cluster.Servers.First(s => s.Address.ToString() != status.Primary && s.Process.Running)
            : cluster.Servers.First(s => s.Address.ToString() == status.Primary);
        var activeMonitor = monitorFault
            ? await Poll.TryForAsync(cluster.ActiveMonitorAsync, m => m is not null && m.Process.Running, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50), ct).ConfigureAwait(false)
                ?? throw new InvalidOperationException("no active monitor for 30 s")
            : null;
        var epoch = backupFault || monitorOnly ? -1 : workload.Recorder.LatestEpoch;
        var faultUtc = DateTimeOffset.UtcNow;
        var at = workload.Recorder.Now;
        if (activeMonitor is not null)
        {
            activeMonitor.Process.Kill();
        }

        if (_options.Fault == "pause")
        {
            primary.Process.Pause();
        }
        else if (!monitorOnly)
        {
            primary.Process.Kill();
        }

        if (activeMonitor is not null && _options.Monitors == 1)
        {
            // A group of one has no other monitor to take over: it comes back at once, as an operator's restart would.
            activeMonitor.Process.WaitForExit(TimeSpan.FromSeconds(5));
            activeMonitor.Process.Start();
        }

        long firstAck;
        if (monitorOnly)
        {
            // Service is back once a monitor is active again (a new one, or the restarted one in a group of one) and
            // the primary acknowledges after that: the stall is the longest gap between acknowledgements in between.
            _ = await Poll.TryForAsync(cluster.ActiveMonitorAsync, m => m is not null && m.Process.Running, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(25), ct).ConfigureAwait(false);
            var back = workload.Recorder.Now;
            firstAck = await workload.Recorder.WaitForAckAfterAsync(back, -1, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        }
        else
        {
            firstAck = await workload.Recorder.WaitForAckAfterAsync(at, epoch, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        }

        if (activeMonitor is not null && _options.Monitors > 1)
        {
            activeMonitor.Process.WaitForExit(TimeSpan.FromSeconds(5));
            activeMonitor.Process.Start();
        }

        if (_options.Fault == "pause")
        {
            primary.Process.Resume();
        }
        else if (!monitorOnly)
        {
            primary.Process.WaitForExit(TimeSpan.FromSeconds(5));
            primary.Process.Start();
        }

        if (firstAck < 0)
        {
            return null;
        }

        var gap = monitorOnly ? workload.Recorder.LongestGapMs(at, firstAck) : workload.Recorder.UnavailableMs(at, backupFault ? null : epoch);
        if (double.IsNaN(gap))
        {
            // No acknowledgement before the fault (the writers had not got going): the gap runs from the fault itself.
            gap = (firstAck - at) / 1000.0;
        }
        double? Since(EventView? e) => e is null ? null : Math.Round((e.At - faultUtc).TotalMilliseconds, 1);
        IReadOnlyList<EventView> events = [];
        try
        {
            events = await cluster.ActiveMonitorEventsAsync(ct).ConfigureAwait(false);
        }
        catch (UnderstudyException)
        {
            // The breakdown is a nicety; the gap is what counts.
        }

        var after = events.Where(e => e.At >= faultUtc.AddMilliseconds(-5)).OrderBy(e => e.At).ToList();
        var detected = after.FirstOrDefault(e => e.Kind == (backupFault ? "MemberDown" : "PrimaryFailed"));
        var promoted = monitorOnly ? null : after.FirstOrDefault(e => e.Kind == (backupFault ? "InSyncShrunk" : "Promoted"));
        var learned = _learned.Where(l => l.At >= faultUtc && l.Epoch > epoch && epoch >= 0).OrderBy(l => l.At).FirstOrDefault();
        var active = learned is null ? null : await cluster.ActiveMonitorAsync(ct).ConfigureAwait(false);
        return new FailoverRound(
            round,
            _options.Fault,
            primary.Address.ToString(),
            promoted?.Member,
            Math.Round(gap, 1),
            Since(detected),
            Since(promoted),
            Math.Round((firstAck - at) / 1000.0, 1))
        {
            Monitor = activeMonitor?.Heartbeat.ToString(),
            LearnedMs = learned is null ? null : Math.Round((learned.At - faultUtc).TotalMilliseconds, 1),
            LearnedFrom = learned switch
            {
                null => null,
                { Source: not "monitor" } => "server",
                _ when _options.Monitors == 1 || learned.Monitor == active?.Client => "active",
                _ => "follower",
            },
        };
    }

    private sealed record PrimaryLearned(DateTimeOffset At, long Epoch, string Source, NodeAddress Monitor);
}

using System.Text;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// One simulated cluster run: a monitor (or a group of them), servers and client workers in a <see cref="SimWorld"/>,
/// faults injected at random while the clients work, then everything healed, the log read back and judged.
/// </summary>
internal sealed class SimCluster
{
    private readonly List<SimMonitor> _monitors = [];
    private readonly List<SimServer> _servers = [];
    private readonly List<SimClient> _clients = [];
    private readonly Dictionary<NodeAddress, SimServer> _byAddress = [];
    private readonly List<LogEntry> _committed = [];
    private readonly List<string> _committedBy = [];
    private SimClient? _checker;
    private int _divergences;
    private int _twoPrimaries;
    private long _workloadEnd;

    public SimCluster(SimulationOptions options)
    {
        options.Validate();
        options = options.ForSeed();
        World = new SimWorld(options);
        if (options.Monitors == 1)
        {
            _monitors.Add(new SimMonitor(this, "mon", new NodeAddress("10.0.1.1", 9000)));
        }
        else
        {
            // Monitor N of `up` listens for heartbeats on 9000 + 10 * (N - 1).
            for (var i = 0; i < options.Monitors; i++)
            {
                _monitors.Add(new SimMonitor(this, $"mon{i + 1}", new NodeAddress("10.0.1." + (i + 1), 9000 + (10 * i))));
            }

            Coordinator = new SimCoordinator(this, _monitors);
        }

        for (var i = 0; i < options.Servers; i++)
        {
            var server = new SimServer(this, $"s{i + 1}", new NodeAddress("10.0.0." + (i + 1), 8090 - i));
            _servers.Add(server);
            _byAddress[server.Address] = server;
        }

        for (var i = 0; i < options.Clients; i++)
        {
            _clients.Add(new SimClient(this, i, record: true));
        }
    }

    public SimWorld World { get; }

    /// <summary>The monitors: one, or the members of a group.</summary>
    public IReadOnlyList<SimMonitor> Monitors => _monitors;

    /// <summary>The group's coordinator (null for a single monitor).</summary>
    public SimCoordinator? Coordinator { get; }

    private bool Group => Coordinator is not null;

    public IReadOnlyList<SimServer> Servers => _servers;

    public SimServer Server(NodeAddress address) => _byAddress[address];

    public SimClient Client(ClientRef client) => client.Id == 1_000_000 ? _checker! : _clients[(int)client.Id];

    public SimulationResult Run()
    {
        var options = World.Options;

        // Any start order must work: start processes in a random order at random moments.
        var starts = _monitors.Select(m => (Action)m.Start).ToList();
        starts.AddRange(_servers.Select(s => (Action)s.Start));
        starts.AddRange(_clients.Select(c => (Action)c.Start));
        foreach (var start in starts.OrderBy(_ => World.Random.Next()))
        {
            World.After(World.Random.Next(300_000), start);
        }

        var workloadStart = SimWorld.Micros(TimeSpan.FromMilliseconds(400));
        _workloadEnd = workloadStart + SimWorld.Micros(options.Duration);
        foreach (var c in _clients)
        {
            World.At(workloadStart + World.Random.Next(50_000), c.BeginWorkload);
        }

        Coordinator?.Start();
        World.At(workloadStart + World.Exponential(options.MeanFaultInterval), InjectFault);
        World.RunUntil(_workloadEnd);

        HealEverything();
        var finalLog = Settle();

        var violations = new List<Violation>(World.Violations);
        CheckResult check;
        if (options.StateMachine == SimulatedStateMachine.KeyValue)
        {
            // The final reads (in the history) are what a lost write would contradict: judge even if they did not all happen.
            check = JudgeKeyValueHistory();
            violations.AddRange(check.Violations);
        }
        else if (finalLog is null)
        {
            check = new CheckResult([], new CheckStats { Operations = World.History.Count });
        }
        else
        {
            check = HistoryChecker.Check(World.History, finalLog);
            violations.AddRange(check.Violations);
        }

        return new SimulationResult
        {
            Seed = options.Seed,
            Violations = violations,
            Stats = check.Stats,
            Faults = new SortedDictionary<string, long>(World.Faults, StringComparer.Ordinal),
            Events = World.EventsRun,
            SimulatedMs = World.Now / 1000,
            History = World.History,
            KeyValueHistory = World.KeyValueHistory,
            FinalLog = finalLog ?? [],
            Trace = World.Trace,
            TraceHash = World.TraceHash,
        };
    }

    /// <summary>Checks a server's newly committed entries against what any server committed at the same index (one order).</summary>
    public long CheckCommitted(SimServer server, long checkedThrough)
    {
        var node = server.Node!;
        // A server restarted from a snapshot holds entries only from its log's first index on.
        var through = Math.Min(node.CommitIndex, node.LastIndex);
        for (var i = Math.Max(checkedThrough + 1, node.Log.FirstIndex); i <= through; i++)
        {
            var entry = node.Log[i];
            if (i > _committed.Count + 1)
            {
                return i - 1; // the entries before it were committed where this check has not seen them yet (an installed snapshot)
            }

            if (i > _committed.Count)
            {
                _committed.Add(entry);
                _committedBy.Add(server.Name);
                continue;
            }

            var first = _committed[(int)(i - 1)];
            if (first.Epoch != entry.Epoch || first.Kind != entry.Kind || first.ClientId != entry.ClientId || first.RequestSeq != entry.RequestSeq || !first.Command.Span.SequenceEqual(entry.Command.Span))
            {
                // One report per divergence is enough: every later index of the same server differs too.
                if (++_divergences <= 5)
                {
                    World.Violations.Add(new Violation(ViolationKind.Invariant, $"committed entry {i} differs: {_committedBy[(int)(i - 1)]} committed {Show(first)}, {server.Name} committed {Show(entry)} (t={World.Now}us)"));
                }

                _committed[(int)(i - 1)] = entry;
                return through;
            }
        }

        return through;
    }

    /// <summary>
    /// The online check of the lease rule: at no instant may two servers act as primary with a valid lease (both could
    /// acknowledge writes). Run after every server input, so it sees every moment a server takes or renews a lease.
    /// </summary>
    public void CheckOnePrimary()
    {
        SimServer? leased = null;
        foreach (var s in _servers)
        {
            if (!s.Up || s.Node is not { Role: ServerRole.Primary, HasLease: true })
            {
                continue;
            }

            if (leased is null)
            {
                leased = s;
                continue;
            }

            // One report is enough: the same two primaries stay leased for many events.
            if (++_twoPrimaries <= 1)
            {
                World.Violations.Add(new Violation(ViolationKind.Invariant, $"two primaries with a valid lease at {World.Now}us: {leased.Name} (epoch {leased.Node!.Epoch}) and {s.Name} (epoch {s.Node.Epoch}); {DescribeMonitors()}"));
            }
        }
    }

    // ------------------------------------------------------------------ faults

    private void InjectFault()
    {
        if (World.Now >= _workloadEnd)
        {
            return;
        }

        var roll = World.Random.Next(100);
        if (Group && roll < 48)
        {
            // A group gets its own faults in the monitor share, at the expense of some server crashes.
            if (roll < 22)
            {
                CrashServer();
            }
            else
            {
                MonitorGroupFault();
            }
        }
        else if (roll < 28)
        {
            CrashServer();
        }
        else if (roll < 38)
        {
            CrashMonitor();
        }
        else if (roll < 58)
        {
            PauseSomething();
        }
        else if (roll < 88)
        {
            PartitionSomething();
        }
        else
        {
            HealPartitionsNow();
        }

        World.After(Math.Max(1000, World.Exponential(World.Options.MeanFaultInterval)), InjectFault);
    }

    private SimServer? CurrentPrimary() =>
        _servers.Where(s => s.Up && s.Node!.Role == ServerRole.Primary).OrderByDescending(s => s.Node!.Epoch).FirstOrDefault();

    private SimServer PickServer(bool preferPrimary)
    {
        if (preferPrimary && World.Random.Next(2) == 0 && CurrentPrimary() is { } primary)
        {
            return primary;
        }

        return _servers[World.Random.Next(_servers.Count)];
    }

    private void CrashServer()
    {
        var server = PickServer(preferPrimary: true);
        if (!server.Up)
        {
            return;
        }

        World.CountFault(server.Node!.Role == ServerRole.Primary ? "crash-primary" : "crash-backup");
        server.Crash();
        NotifyConnectionLost(server);
        if (World.Random.Next(100) < 85)
        {
            World.After(World.Uniform(TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(2000)), () =>
            {
                if (!server.Up)
                {
                    World.CountFault("restart-server");
                    server.Start();
                }
            });
        }
    }

    /// <summary>
    /// The crash-during-backfill fault: a backup that has just installed a snapshot is, in some runs, crashed before the
    /// entries its snapshot's state reads are all on its disk (none arrived yet, or some unsynced), then restarted. A
    /// restart must find the snapshot with the log from where it resumed, and go on backfilling from there.
    /// </summary>
    internal void AfterSnapshotInstalled(SimServer server)
    {
        if (World.Now >= _workloadEnd || World.Random.Next(100) >= 40)
        {
            return;
        }

        var life = server.Life;
        // Soon: the entries after the resume point arrive within a round trip, and reach the disk within a sync.
        World.After(World.Uniform(TimeSpan.Zero, TimeSpan.FromMilliseconds(2)), () =>
        {
            if (!server.Up || server.Life != life || server.Node is not { } node || node.DurableIndex >= node.SnapshotIndex)
            {
                return;
            }

            World.CountFault("crash-backfilling");
            server.Crash();
            NotifyConnectionLost(server);
            World.After(World.Uniform(TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(1000)), () =>
            {
                if (!server.Up)
                {
                    World.CountFault("restart-server");
                    server.Start();
                }
            });
        });
    }

    private void CrashMonitor() => CrashMonitor(_monitors[0], "crash-monitor");

    private void CrashMonitor(SimMonitor monitor, string kind)
    {
        if (!monitor.Up)
        {
            return;
        }

        World.CountFault(kind);
        monitor.Crash();
        World.After(World.Uniform(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1500)), () =>
        {
            if (!monitor.Up)
            {
                RestartMonitor(monitor);
            }
        });
    }

    private void RestartMonitor(SimMonitor monitor)
    {
        World.CountFault("restart-monitor");
        monitor.Start();

        // Clients reconnect to the monitor and subscribe again (in a group, those whose connection failed have moved
        // on to another member and ask it whenever they need to).
        if (Group)
        {
            return;
        }

        foreach (var c in _clients.Append(_checker).OfType<SimClient>())
        {
            if (!World.IsCut(c, monitor))
            {
                var life = c.Life;
                World.After(World.Latency(), () => c.Deliver(life, c.Session.Start));
            }
        }
    }

    /// <summary>The group's own faults: its active member, a follower or a majority crashed, paused or cut off; a former active member isolated beside a new one; a drifting clock.</summary>
    private void MonitorGroupFault()
    {
        var active = Coordinator!.Leader;
        var followers = _monitors.Where(m => m != active).ToList();
        var follower = followers[World.Random.Next(followers.Count)];
        var majority = _monitors.OrderBy(_ => World.Random.Next()).Take((_monitors.Count / 2) + 1).ToList();
        switch (World.Random.Next(11))
        {
            case 0 when active is not null:
                CrashMonitor(active, "crash-active-monitor");
                break;
            case 1:
                CrashMonitor(follower, "crash-follower-monitor");
                break;
            case 2 when majority.Any(m => m.Up):
                World.CountFault("crash-monitor-majority");
                foreach (var m in majority)
                {
                    CrashMonitor(m, "crash-monitor");
                }

                break;
            case 3 when active is not null:
                Pause(active, "pause-active-monitor", LongPause());
                break;
            case 4:
                Pause(follower, "pause-follower-monitor", LongPause());
                break;
            case 5:
                World.CountFault("pause-monitor-majority");
                var duration = LongPause();
                foreach (var m in majority)
                {
                    Pause(m, "pause-monitor", duration);
                }

                break;
            case 6 when active is not null:
                PartitionFor("partition-active-monitor", World.Partition([active], AllBut([active])), PartitionDuration());
                break;
            case 7:
                PartitionFor("partition-follower-monitor", World.Partition([follower], AllBut([follower])), PartitionDuration());
                break;
            case 8:
                // The majority keeps the servers half the time: then it can elect a leader that sees them.
                var withServers = World.Random.Next(2) == 0;
                var cut = withServers ? AllBut(majority).Where(n => n is SimMonitor) : AllBut(majority);
                PartitionFor("partition-monitor-majority", World.Partition(majority, cut), PartitionDuration());
                break;
            case 9 when active is not null:
                // Cut off from the group, long enough for the group to elect another: the former active monitor runs
                // on beside the new one, believing it still leads. Mostly the primary is on its side (a split with
                // the primary and the old active monitor in one room), cut off from the other servers and monitors but
                // not from clients: the new active monitor then replaces a primary the old one would keep leasing.
                var isolation = SimWorld.Micros(World.Options.MonitorGroupLease) + World.Uniform(TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(2500));
                var side = new List<SimNode> { active };
                if (World.Random.Next(3) != 0 && CurrentPrimary() is { } primary)
                {
                    side.Add(primary);
                }

                var rest = followers.Cast<SimNode>().Concat(_servers.Where(s => !side.Contains(s)));
                PartitionFor("isolate-former-active-monitor", World.Partition(side, rest), isolation);
                break;
            case 10:
                // Any rate within the bound the leases assume, fast or slow, from now on.
                var monitor = _monitors[World.Random.Next(_monitors.Count)];
                var drift = (World.Random.NextDouble() * 2 - 1) * Coordinator.DriftBound;
                World.CountFault("monitor-clock-drift");
                World.Log(monitor.Name, $"CLOCK DRIFT {drift * 100:0.00}%");
                monitor.Clock.SetDrift(drift);
                break;
        }
    }

    /// <summary>Every process but <paramref name="these"/>.</summary>
    private IEnumerable<SimNode> AllBut(IReadOnlyCollection<SimNode> these) =>
        _monitors.Cast<SimNode>().Concat(_servers).Concat(_clients).Where(n => !these.Contains(n));

    private long LongPause() => World.Random.Next(2) == 0
        ? World.Uniform(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(200))
        : World.Uniform(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(2500));

    private long PartitionDuration() => World.Uniform(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(3000));

    private void Pause(SimNode node, string kind, long duration)
    {
        if (!node.Up || node.Paused)
        {
            return;
        }

        World.CountFault(kind);
        World.Log(node.Name, $"PAUSED for {duration / 1000} ms");
        node.Pause();
        var life = node.Life;
        World.After(duration, () =>
        {
            if (node.Up && node.Life == life && node.Paused)
            {
                World.Log(node.Name, "RESUMED");
                node.Resume();
            }
        });
    }

    private void PartitionFor(string kind, int id, long duration)
    {
        World.CountFault(kind);
        World.Log("net", kind.ToUpperInvariant());
        World.After(duration, () =>
        {
            World.CountFault("heal");
            World.Log("net", $"HEAL {kind}");
            World.Heal(id);
        });
    }

    private void PauseSomething()
    {
        SimNode node = World.Random.Next(10) == 0 ? (Group ? _monitors[World.Random.Next(_monitors.Count)] : _monitors[0]) : PickServer(preferPrimary: true);
        if (!node.Up || node.Paused)
        {
            return;
        }

        // Short pauses stay under the failure timeout; long ones outlast the lease.
        var duration = World.Random.Next(2) == 0
            ? World.Uniform(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(200))
            : World.Uniform(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(2500));
        World.CountFault(node is SimMonitor ? "pause-monitor" : "pause-server");
        World.Log(node.Name, $"PAUSED for {duration / 1000} ms");
        node.Pause();
        var life = node.Life;
        World.After(duration, () =>
        {
            if (node.Up && node.Life == life && node.Paused)
            {
                World.Log(node.Name, "RESUMED");
                node.Resume();
            }
        });
    }

    private void PartitionSomething()
    {
        var roll = World.Random.Next(100);
        int id;
        string kind;
        var primary = CurrentPrimary();
        if (roll < 40 && primary is not null)
        {
            // The nasty one: the primary loses the monitor and its backups but its clients still reach it.
            kind = "partition-primary";
            id = World.Partition([primary], _servers.Where(s => s != primary).Cast<SimNode>().Concat(_monitors));
        }
        else if (roll < 60)
        {
            var server = PickServer(preferPrimary: false);
            kind = "partition-server";
            id = World.Partition([server], _servers.Where(s => s != server).Cast<SimNode>().Concat(_monitors).Concat(_clients));
        }
        else if (roll < 75)
        {
            kind = "partition-monitor";
            var others = World.Random.Next(2) == 0 ? _servers.Cast<SimNode>() : _servers.Cast<SimNode>().Concat(_clients);
            id = World.Partition([Group ? _monitors[World.Random.Next(_monitors.Count)] : _monitors[0]], others);
        }
        else if (roll < 90)
        {
            kind = "partition-split";
            var nodes = _servers.Cast<SimNode>().Concat(_monitors).OrderBy(_ => World.Random.Next()).ToList();
            var cut = 1 + World.Random.Next(nodes.Count - 1);
            id = World.Partition(nodes.Take(cut), nodes.Skip(cut));
        }
        else
        {
            kind = "partition-link";
            var a = _servers[World.Random.Next(_servers.Count)];
            var b = _servers[World.Random.Next(_servers.Count)];
            if (a == b)
            {
                return;
            }

            id = World.Partition([a], [b]);
        }

        World.CountFault(kind);
        World.Log("net", kind.ToUpperInvariant());
        World.After(World.Uniform(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(3000)), () =>
        {
            World.CountFault("heal");
            World.Log("net", $"HEAL {kind}");
            World.Heal(id);
        });
    }

    private void HealPartitionsNow()
    {
        if (World.HasPartition)
        {
            World.CountFault("heal");
            World.Log("net", "HEAL all");
            World.HealAll();
        }
    }

    /// <summary>A crashed process's TCP connections reset: peers that can reach it notice.</summary>
    private void NotifyConnectionLost(SimServer crashed)
    {
        var address = crashed.Address;
        foreach (var monitor in _monitors.Where(m => m.Up && !World.IsCut(crashed, m)))
        {
            var life = monitor.Life;
            World.After(World.Latency(), () => monitor.Deliver(life, () => monitor.Node!.OnServerConnectionLost(address)));
        }

        foreach (var s in _servers.Where(s => s != crashed && s.Up && !World.IsCut(crashed, s)))
        {
            var life = s.Life;
            World.After(World.Latency(), () => s.Deliver(life, () => s.OnPeerConnectionLost(address)));
        }

        foreach (var c in _clients.Where(c => !World.IsCut(crashed, c)))
        {
            var life = c.Life;
            World.After(World.Latency(), () => c.Deliver(life, () => c.OnServerConnectionLost(address)));
        }
    }

    // ------------------------------------------------------------------ the end of a run

    private void HealEverything()
    {
        foreach (var c in _clients)
        {
            c.Active = false;
        }

        World.Network = NetworkProfile.Calm;
        World.HealAll();
        World.Log("net", "END OF FAULTS: healing everything");
        foreach (var monitor in _monitors)
        {
            if (!monitor.Up)
            {
                RestartMonitor(monitor);
            }
            else if (monitor.Paused)
            {
                monitor.Resume();
            }
        }

        foreach (var s in _servers)
        {
            if (!s.Up)
            {
                World.CountFault("restart-server");
                s.Start();
            }
            else if (s.Paused)
            {
                s.Resume();
            }
        }
    }

    /// <summary>Waits for recovery and reads the whole log back; null (and a violation) if the cluster never recovers.</summary>
    private List<string>? Settle()
    {
        var options = World.Options;
        var deadline = World.Now + SimWorld.Micros(options.SettleTimeout);
        World.RunUntil(() => _clients.All(c => c.Idle), World.Now + SimWorld.Micros(options.Client.RequestTimeout + TimeSpan.FromSeconds(1)));

        if (!World.RunUntil(Converged, deadline))
        {
            World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"no recovery {options.SettleTimeout.TotalSeconds:0} s after every fault was healed: {DescribeState()}"));
            return null;
        }

        _checker = new SimClient(this, -1, record: false);
        _checker.Start();
        if (options.StateMachine == SimulatedStateMachine.KeyValue)
        {
            return ReadEveryKey() ? CompareStates() : null;
        }

        var final = new List<string>();
        long from = 1;
        while (true)
        {
            ClientResultHolder? result = null;
            _checker.Call(RequestKind.Read, MessageStoreCommands.Read(from + final.Count, MessageStoreCommands.MaxReadCount), TimeSpan.FromSeconds(5), r => result = new ClientResultHolder(r));
            World.RunUntil(() => result is not null, World.Now + SimWorld.Micros(TimeSpan.FromSeconds(6)));
            if (result is null || result.Value.Outcome != Core.Client.OutcomeKind.Ok)
            {
                World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"the final read failed ({result?.Value.Error ?? "no answer"}): {DescribeState()}"));
                return null;
            }

            IReadOnlyList<SequencedMessage> page;
            try
            {
                page = MessageStoreCommands.DecodeMessages(result.Value.Payload.Span);
            }
            catch (MessagesRemovedException removed) when (final.Count == 0 && removed.FirstRetained > from)
            {
                from = removed.FirstRetained; // retention removed the oldest: read what is kept
                continue;
            }

            if (page.Count == 0)
            {
                break; // a page can be short of MaxReadCount when the byte cap cuts it: only an empty one is the end
            }

            final.AddRange(page.Select(m => m.Text));
        }

        // Every server must hold the same state: the same committed log, applied the same way.
        var primary = CurrentPrimary()!;
        var primaryLog = ((MessageStore)primary.Node!.State.Machine).ToList().Select(m => m.Text).ToList();
        if (!primaryLog.SequenceEqual(final, StringComparer.Ordinal))
        {
            World.Violations.Add(new Violation(ViolationKind.Invariant, $"the final read ({final.Count}) differs from the primary's message store ({primaryLog.Count})"));
        }

        if (from > 1)
        {
            // Retention removed the oldest messages from every server: the checker judges the whole order, so the
            // messages before the first kept one come from the committed log as the simulator saw it being committed,
            // applied here the way a server applies it; the kept ones must agree with it.
            var all = CommittedMessages();
            if (all.Count != from - 1 + final.Count || !all.Skip((int)(from - 1)).SequenceEqual(final, StringComparer.Ordinal))
            {
                World.Violations.Add(new Violation(ViolationKind.Invariant, $"the messages kept from {from} ({final.Count}) differ from the committed log's ({all.Count - (from - 1)})"));
            }

            final = [.. all.Take((int)(from - 1)), .. final];
        }

        CompareStates();
        return final;
    }

    /// <summary>Every server must hold the same state: the same committed log, applied the same way. Returns an empty final log.</summary>
    private List<string> CompareStates()
    {
        var primary = CurrentPrimary()!;
        var snapshot = primary.Node!.State.SnapshotBytes();
        foreach (var s in _servers.Where(s => s != primary))
        {
            if (s.Node!.State.AppliedIndex == primary.Node!.State.AppliedIndex && !s.Node.State.SnapshotBytes().AsSpan().SequenceEqual(snapshot))
            {
                World.Violations.Add(new Violation(ViolationKind.Invariant, $"{s.Name}'s state differs from the primary's at applied index {primary.Node.State.AppliedIndex}"));
            }
        }

        return [];
    }

    /// <summary>
    /// With the key-value store: once the cluster has recovered, a get of every key, recorded in the history (process -1):
    /// an acknowledged write lost in a failover contradicts what these read. False (and a violation) if one fails.
    /// </summary>
    private bool ReadEveryKey()
    {
        var keys = Enumerable.Range(0, World.Options.Keys).SelectMany(i => new[] { KeyValueCalls.Register(i), KeyValueCalls.Counter(i) });
        foreach (var key in keys)
        {
            var open = new KvOperation { Process = -1, Function = KvFunction.Get, Key = key, InvokedAt = World.Now, Outcome = KvOutcome.Unknown };
            ClientResultHolder? result = null;
            _checker!.Call(RequestKind.Read, KeyValueCommands.Get(key), TimeSpan.FromSeconds(5), r => result = new ClientResultHolder(r));
            World.RunUntil(() => result is not null, World.Now + SimWorld.Micros(TimeSpan.FromSeconds(6)));
            if (result is null || result.Value.Outcome != Core.Client.OutcomeKind.Ok)
            {
                World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"the final get of {key} failed ({result?.Value.Error ?? "no answer"}): {DescribeState()}"));
                return false;
            }

            World.KeyValueHistory.Add(KeyValueCalls.Record(open, result.Value, World.Now));
        }

        return true;
    }

    /// <summary>The key-value history judged by the linearizability checker (one thread: sweeps already run seeds in parallel).</summary>
    private CheckResult JudgeKeyValueHistory()
    {
        var history = World.KeyValueHistory;
        var result = LinearizabilityChecker.Check(history, new LinearizabilityOptions { MaxDegreeOfParallelism = 1, Budget = TimeSpan.FromSeconds(30) });
        var violations = new List<Violation>();
        foreach (var key in result.Keys.Where(k => k.Verdict != LinearizabilityVerdict.Linearizable))
        {
            violations.Add(new Violation(ViolationKind.NotLinearizable, key.Verdict == LinearizabilityVerdict.Unknown
                ? $"key {key.Key}: the checker ran out of its budget on {key.Operations} operations: undecided"
                : key.ToString()));
        }

        var acknowledged = history.Count(o => o.Outcome == KvOutcome.Ok);
        return new CheckResult(violations, new CheckStats
        {
            Operations = history.Count,
            Acknowledged = acknowledged,
            Failed = history.Count(o => o.Outcome == KvOutcome.Failed),
            Indeterminate = history.Count(o => o.Outcome == KvOutcome.Unknown),
            Reads = history.Count(o => o.Function == KvFunction.Get),
        });
    }

    /// <summary>Every message in the committed log, in order: its entries applied to a store that keeps everything.</summary>
    private List<string> CommittedMessages()
    {
        var store = new MessageStore();
        var state = new ReplicatedState(store, World.Options.ServerForSeed.MaxClientSessions, World.Options.ServerForSeed.SessionIdleTimeout);
        foreach (var entry in _committed)
        {
            state.Apply(entry);
        }

        return [.. store.ToList().Select(m => m.Text)];
    }

    /// <summary>The monitor that acts for the cluster: the one monitor, or the group's leader once it knows it leads.</summary>
    private SimMonitor? ActiveMonitor()
    {
        if (Coordinator is null)
        {
            return _monitors[0].Up ? _monitors[0] : null;
        }

        return Coordinator.Leader is { Node.IsActive: true } leader && leader.ViewTerm == Coordinator.Term ? leader : null;
    }

    private bool Converged()
    {
        if (ActiveMonitor() is not { } monitor || monitor.Node!.Phase != FailoverPhase.Stable)
        {
            return false;
        }

        var config = monitor.Node.Config;
        if (config.Primary.IsNone || !_byAddress.TryGetValue(config.Primary, out var primary) || !primary.Up || !primary.Node!.IsServing)
        {
            return false;
        }

        var node = primary.Node;
        if (node.CommitIndex != node.LastIndex || !_servers.All(s => s.Up && config.IsInSync(s.Address)))
        {
            return false;
        }

        return _servers.All(s => s.Node!.CommitIndex == node.CommitIndex && s.Node.LastIndex == node.LastIndex);
    }

    private string DescribeState()
    {
        var sb = new StringBuilder();
        if (!Group && _monitors[0].Node is { } m)
        {
            sb.Append($"monitor phase {m.Phase}, config {m.Config}; ");
        }
        else if (Group)
        {
            sb.Append(DescribeMonitors()).Append("; ");
        }

        foreach (var s in _servers)
        {
            sb.Append(s.Node is { } n
                ? $"{s.Name} {n.Role} e{n.Epoch} last={n.LastIndex}@{n.LastEpoch} commit={n.CommitIndex} serving={n.IsServing}; "
                : $"{s.Name} down; ");
            if (s.Node is { Role: ServerRole.Primary } p)
            {
                foreach (var f in p.Followers)
                {
                    sb.Append($"[{f.Address} match={f.MatchIndex} next={f.NextIndex} probing={f.Probing} inflight={f.Inflight} sent={f.LastSentAt} ack={f.LastAckAt} disconnected={f.Disconnected}] ");
                }
            }
        }

        return sb.ToString();
    }

    private string DescribeMonitors() => Coordinator is null
        ? string.Empty
        : $"coordinator term {Coordinator.Term} leader {Coordinator.Leader?.Name ?? "none"} committed v{Coordinator.Committed.Version}; " + string.Join("; ", _monitors.Select(m => m.Node is { } n
            ? $"{m.Name} {(n.IsActive ? "active" : "follower")} term {n.Leadership.Term} phase {n.Phase} config v{n.Config.Version} e{n.Config.Epoch} primary {n.Config.Primary}{(m.Paused ? " paused" : string.Empty)}"
            : $"{m.Name} down"));

    private static string Show(LogEntry e) => $"{e.Index}@{e.Epoch} {e.Kind} client={e.ClientId:x} seq={e.RequestSeq}";

    private sealed class ClientResultHolder(Core.Client.ClientResult value)
    {
        public Core.Client.ClientResult Value { get; } = value;
    }
}

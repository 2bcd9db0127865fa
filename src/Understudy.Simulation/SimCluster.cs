using System.Text;
using Understudy.Checking;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// One simulated cluster run: a monitor, servers and client workers in a <see cref="SimWorld"/>, faults
/// injected at random while the clients work, then everything healed, the log read back and judged.
/// </summary>
internal sealed class SimCluster
{
    private readonly List<SimServer> _servers = [];
    private readonly List<SimClient> _clients = [];
    private readonly Dictionary<NodeAddress, SimServer> _byAddress = [];
    private readonly List<LogEntry> _committed = [];
    private readonly List<string> _committedBy = [];
    private SimClient? _checker;
    private int _divergences;
    private long _workloadEnd;

    public SimCluster(SimulationOptions options)
    {
        World = new SimWorld(options);
        Monitor = new SimMonitor(this);
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

    public SimMonitor Monitor { get; }

    public IReadOnlyList<SimServer> Servers => _servers;

    public SimServer Server(NodeAddress address) => _byAddress[address];

    public SimClient Client(ClientRef client) => client.Id == 1_000_000 ? _checker! : _clients[(int)client.Id];

    public SimulationResult Run()
    {
        var options = World.Options;

        // Any start order must work: start processes in a random order at random moments.
        var starts = new List<Action> { Monitor.Start };
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

        World.At(workloadStart + World.Exponential(options.MeanFaultInterval), InjectFault);
        World.RunUntil(_workloadEnd);

        HealEverything();
        var finalLog = Settle();

        var violations = new List<Violation>(World.Violations);
        CheckResult check;
        if (finalLog is null)
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
        for (var i = Math.Max(checkedThrough + 1, node.Log.FirstIndex); i <= node.CommitIndex; i++)
        {
            var entry = node.Log[i];
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
                return node.CommitIndex;
            }
        }

        return node.CommitIndex;
    }

    // ------------------------------------------------------------------ faults

    private void InjectFault()
    {
        if (World.Now >= _workloadEnd)
        {
            return;
        }

        var roll = World.Random.Next(100);
        if (roll < 28)
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

    private void CrashMonitor()
    {
        if (!Monitor.Up)
        {
            return;
        }

        World.CountFault("crash-monitor");
        Monitor.Crash();
        World.After(World.Uniform(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1500)), () =>
        {
            if (!Monitor.Up)
            {
                RestartMonitor();
            }
        });
    }

    private void RestartMonitor()
    {
        World.CountFault("restart-monitor");
        Monitor.Start();

        // Clients reconnect to the monitor and subscribe again.
        foreach (var c in _clients.Append(_checker).OfType<SimClient>())
        {
            if (!World.IsCut(c, Monitor))
            {
                var life = c.Life;
                World.After(World.Latency(), () => c.Deliver(life, c.Session.Start));
            }
        }
    }

    private void PauseSomething()
    {
        SimNode node = World.Random.Next(10) == 0 ? Monitor : PickServer(preferPrimary: true);
        if (!node.Up || node.Paused)
        {
            return;
        }

        // Short pauses stay under the failure timeout; long ones outlast the lease.
        var duration = World.Random.Next(2) == 0
            ? World.Uniform(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(200))
            : World.Uniform(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(2500));
        World.CountFault(node == Monitor ? "pause-monitor" : "pause-server");
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
            id = World.Partition([primary], _servers.Where(s => s != primary).Cast<SimNode>().Append(Monitor));
        }
        else if (roll < 60)
        {
            var server = PickServer(preferPrimary: false);
            kind = "partition-server";
            id = World.Partition([server], _servers.Where(s => s != server).Cast<SimNode>().Append(Monitor).Concat(_clients));
        }
        else if (roll < 75)
        {
            kind = "partition-monitor";
            var others = World.Random.Next(2) == 0 ? _servers.Cast<SimNode>() : _servers.Cast<SimNode>().Concat(_clients);
            id = World.Partition([Monitor], others);
        }
        else if (roll < 90)
        {
            kind = "partition-split";
            var nodes = _servers.Cast<SimNode>().Append(Monitor).OrderBy(_ => World.Random.Next()).ToList();
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
        if (Monitor.Up && !World.IsCut(crashed, Monitor))
        {
            var life = Monitor.Life;
            World.After(World.Latency(), () => Monitor.Deliver(life, () => Monitor.Node!.OnServerConnectionLost(address)));
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
        if (!Monitor.Up)
        {
            RestartMonitor();
        }
        else if (Monitor.Paused)
        {
            Monitor.Resume();
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
        var final = new List<string>();
        while (true)
        {
            ClientResultHolder? result = null;
            _checker.Call(RequestKind.Read, MessageStoreCommands.Read(final.Count + 1, MessageStoreCommands.MaxReadCount), TimeSpan.FromSeconds(5), r => result = new ClientResultHolder(r));
            World.RunUntil(() => result is not null, World.Now + SimWorld.Micros(TimeSpan.FromSeconds(6)));
            if (result is null || result.Value.Outcome != Core.Client.OutcomeKind.Ok)
            {
                World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"the final read failed ({result?.Value.Error ?? "no answer"}): {DescribeState()}"));
                return null;
            }

            var page = MessageStoreCommands.DecodeMessages(result.Value.Payload.Span);
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

        var snapshot = primary.Node!.State.SnapshotBytes();
        foreach (var s in _servers.Where(s => s != primary))
        {
            if (s.Node!.State.AppliedIndex == primary.Node!.State.AppliedIndex && !s.Node.State.SnapshotBytes().AsSpan().SequenceEqual(snapshot))
            {
                World.Violations.Add(new Violation(ViolationKind.Invariant, $"{s.Name}'s state differs from the primary's at applied index {primary.Node.State.AppliedIndex}"));
            }
        }

        return final;
    }

    private bool Converged()
    {
        if (!Monitor.Up || Monitor.Node!.Phase != FailoverPhase.Stable)
        {
            return false;
        }

        var config = Monitor.Node.Config;
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
        if (Monitor.Node is { } m)
        {
            sb.Append($"monitor phase {m.Phase}, config {m.Config}; ");
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

    private static string Show(LogEntry e) => $"{e.Index}@{e.Epoch} {e.Kind} client={e.ClientId:x} seq={e.RequestSeq}";

    private sealed class ClientResultHolder(Core.Client.ClientResult value)
    {
        public Core.Client.ClientResult Value { get; } = value;
    }
}

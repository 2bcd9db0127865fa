using Understudy.Checking;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// One simulated cluster run: a monitor (or a group of them), servers and client workers in a <see cref="SimWorld"/>,
/// faults injected at random while the clients work, then everything healed, the log read back and judged.
/// </summary>
internal sealed partial class SimCluster
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
}

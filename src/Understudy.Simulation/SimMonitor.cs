using Understudy.Checking;
using Understudy.Core;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// A monitor process: the real <see cref="MonitorNode"/> over a simulated configuration store (a group of one)
/// or over the group's <see cref="SimCoordinator"/> (a group of three or five).
/// </summary>
internal sealed class SimMonitor : SimNode, IMonitorEnvironment
{
    private readonly SimCluster _cluster;
    private readonly NodeClock _clock;

    public SimMonitor(SimCluster cluster, string name, NodeAddress address)
        : base(cluster.World, name)
    {
        _cluster = cluster;
        Address = address;
        _clock = new NodeClock(cluster.World, cluster.World.Random.NextInt64(1_000_000, 1_000_000_000), (cluster.World.Random.NextDouble() - 0.5) * 0.01);
    }

    /// <summary>Its heartbeat address, which names it in the group.</summary>
    public NodeAddress Address { get; }

    public NodeClock Clock => _clock;

    public SimConfigStore Store { get; } = new();

    public MonitorNode? Node { get; private set; }

    /// <summary>In a group: the newest committed configuration this monitor holds (its Raft log survives a crash).</summary>
    public ClusterConfig Observed { get; private set; } = ClusterConfig.Initial;

    /// <summary>In a group: the term of the last leadership view it took (0 after a restart).</summary>
    public long ViewTerm { get; private set; }

    /// <summary>In a group: whether the last view it took said it is active.</summary>
    public bool ViewActive { get; private set; }

    private SimCoordinator? Group => _cluster.Coordinator;

    public void Start()
    {
        Life++;
        Up = true;
        if (Group is null)
        {
            Node = new MonitorNode(World.Options.Monitor, Store.Stored, this, _clock, World.Random.NextUInt64(), World.Options.PromotionRule, World.Options.MonitorLeaseRule?.Invoke());
            World.Log(Name, $"started with {Store.Stored}");
        }
        else
        {
            // A restarted member knows its log but not who leads: it follows until the coordinator tells it.
            ViewTerm = 0;
            ViewActive = false;
            Node = new MonitorNode(World.Options.Monitor, Observed, this, _clock, World.Random.NextUInt64(), World.Options.PromotionRule, World.Options.MonitorLeaseRule?.Invoke(), new MonitorLeadership(0, false, NodeAddress.None, 0));
            World.Log(Name, $"started with {Observed}, following");
        }

        ScheduleTicks(() => Node!.Tick());
    }

    public void Crash()
    {
        GoDown();
        Node = null;
        if (Group is null)
        {
            Store.Crash(World.Random);
        }

        World.Log(Name, "CRASHED");
    }

    /// <summary>The coordinator's view reached this monitor: newer terms only, and a confirmation only moves later.</summary>
    public void ApplyLeadership(MonitorLeadership view)
    {
        if (view.Term < ViewTerm || (view.Term == ViewTerm && view.IsActive == ViewActive && view.ConfirmedUntil <= Node!.Leadership.ConfirmedUntil))
        {
            return;
        }

        if (view.Term != ViewTerm || view.IsActive != ViewActive)
        {
            World.Log(Name, $"term {view.Term}: {(view.IsActive ? "ACTIVE" : "following " + view.Active)}");
        }

        ViewTerm = view.Term;
        ViewActive = view.IsActive;
        Node!.OnLeadership(view);
    }

    /// <summary>A committed configuration reached this monitor through the coordinator.</summary>
    public void ObserveConfig(ClusterConfig committed)
    {
        if (committed.Version <= Observed.Version)
        {
            return;
        }

        Observed = committed;
        Node!.OnConfigObserved(committed);
    }

    /// <summary>The coordinator's answer to this monitor's compare-and-set.</summary>
    public void OnConfigWritten(bool committed, ClusterConfig current)
    {
        if (current.Version > Observed.Version)
        {
            Observed = current;
        }

        Node!.OnConfigStored(committed, current);
    }

    /// <summary>The host's dispatch: a server speaks only for itself, then the shared map to the node's input.</summary>
    protected override void Take(SimNode from, IMessage message)
    {
        var ok = MonitorInbox.SenderOf(message.Type) switch
        {
            MonitorSender.Server => from is SimServer server && MonitorInbox.ServerOf(message) == server.Address,
            MonitorSender.Client => from is SimClient,
            _ => false,
        };
        if (!ok)
        {
            Reject(from, $"the monitor does not take {message.Type} from {from.Name}");
            return;
        }

        MonitorInbox.Deliver(Node!, (from as SimClient)?.Ref ?? default, message);
    }

    protected override void AfterInput()
    {
        try
        {
            Node!.CheckInvariants();
        }
        catch (InvariantViolationException e)
        {
            World.Violations.Add(new Violation(ViolationKind.Invariant, $"{Name} at {World.Now}us: {e.Message}"));
        }
    }

    public void SendToServer<T>(NodeAddress server, in T message)
        where T : IMessage => World.Send(this, _cluster.Server(server), message);

    public void SendToClient<T>(ClientRef client, in T message)
        where T : IMessage => World.Send(this, _cluster.Client(client), message);

    public void Probe(NodeAddress server)
    {
        var target = _cluster.Server(server);
        var life = Life;
        if (World.IsCut(this, target))
        {
            World.After(SimWorld.Micros(TimeSpan.FromMilliseconds(100)), () => Deliver(life, () => Node!.OnProbeResult(server, ProbeOutcome.TimedOut)));
            return;
        }

        // The port refuses only if no process listens when the probe arrives.
        World.After(World.Latency(), () =>
        {
            var outcome = target.Up ? ProbeOutcome.Accepted : ProbeOutcome.Refused;
            World.After(World.Latency(), () => Deliver(life, () => Node!.OnProbeResult(server, outcome)));
        });
    }

    public void ProposeConfig(long expectedVersion, ClusterConfig next)
    {
        if (Group is { } group)
        {
            group.Propose(this, Node!.Leadership.Term, expectedVersion, next);
            return;
        }

        var write = Store.Begin(expectedVersion, next);
        var life = Life;
        World.After(100 + World.Random.Next(3000), () =>
        {
            if (write.Abandoned)
            {
                return;
            }

            var committed = Store.Complete(write);
            Deliver(life, () => Node!.OnConfigStored(committed, Store.Stored));
        });
    }

    public void Report(MonitorEvent e)
    {
        if (World.Tracing)
        {
            World.Log(Name, $"{e.Kind} {(e.Member.IsNone ? string.Empty : e.Member + " ")}{e.Detail}{(e.ElapsedMs is { } ms ? $" ({ms:0.0} ms)" : string.Empty)}");
        }
    }
}

using Understudy.Core.Monitor;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// The coordinator of a simulated monitor group (what Raft or etcd is for the real one), as a deterministic
/// oracle over the simulated network: a leader term, a leadership lease, and a configuration store with
/// compare-and-set that commits only through a majority.
/// </summary>
/// <remarks>
/// <para>Every round (a Raft heartbeat) the leader, if running, asks every monitor it can reach; if a majority
/// (itself included) is up, unpaused and reachable both ways, the leadership lease runs on to round start +
/// <see cref="SimulationOptions.MonitorGroupLease"/> on the coordinator's clock (true simulated time), and the
/// leader learns, one round trip later, <c>ConfirmedUntil</c> = its own clock at round start + the lease −
/// <see cref="MonitorOptions.MaxClockDrift"/>. A clock slower than true time by at most MaxClockDrift per lease
/// period therefore reaches ConfirmedUntil before the coordinator's lease ends: the promise the real coordinators
/// make.</para>
/// <para>A new leader is elected only after the previous leadership lease has run out on the coordinator's clock
/// (plus a random election timeout), and only by a monitor that reaches a majority; it is handed the committed
/// configuration with its election (Raft's leader completeness). Monitors learn views and configurations only over
/// links that work, so an isolated former leader keeps believing it is active, with a confirmation that no longer
/// moves: exactly what the monitor's lease rule must cope with.</para>
/// </remarks>
internal sealed class SimCoordinator
{
    private readonly SimCluster _cluster;
    private readonly IReadOnlyList<SimMonitor> _monitors;
    private readonly long _lease;
    private readonly long _maxDrift;
    private readonly long _roundInterval;
    private SimMonitor? _leader;
    private int _leaderLife;
    private long _leaseEnd;
    private long _electionAt;

    public SimCoordinator(SimCluster cluster, IReadOnlyList<SimMonitor> monitors)
    {
        _cluster = cluster;
        _monitors = monitors;
        var options = cluster.World.Options;
        _lease = SimWorld.Micros(options.MonitorGroupLease);
        _maxDrift = SimWorld.Micros(options.Monitor.MaxClockDrift);
        _roundInterval = SimWorld.Micros(options.MonitorGroupRound);
    }

    private SimWorld World => _cluster.World;

    /// <summary>The leader term (0 before the first election).</summary>
    public long Term { get; private set; }

    /// <summary>The elected leader while it has not crashed (it may be paused or cut off).</summary>
    public SimMonitor? Leader => _leader is { Up: true } leader && leader.Life == _leaderLife ? leader : null;

    /// <summary>The committed configuration.</summary>
    public ClusterConfig Committed { get; private set; } = ClusterConfig.Initial;

    /// <summary>
    /// The fastest rate drift (as a fraction of true time) the group's leases tolerate: MaxClockDrift per lease period,
    /// whichever is longer of the monitors' lease to the primary and the group's leadership lease.
    /// </summary>
    public double DriftBound => (double)_maxDrift / Math.Max(_lease, SimWorld.Micros(World.Options.Monitor.LeaseDuration));

    private int Majority => (_monitors.Count / 2) + 1;

    public void Start()
    {
        _electionAt = World.Random.NextInt64(_roundInterval * 3);
        ScheduleRound();
    }

    private void ScheduleRound() =>
        World.After(_roundInterval - (_roundInterval / 5) + World.Random.NextInt64((_roundInterval * 2 / 5) + 1), () =>
        {
            Round();
            ScheduleRound();
        });

    /// <summary>Whether two monitors can talk right now (both running, the link not cut either way).</summary>
    private bool Reach(SimMonitor a, SimMonitor b) =>
        a == b || (b.Up && !b.Paused && !World.IsCut(a, b) && !World.IsCut(b, a));

    private List<SimMonitor> Reachable(SimMonitor from) => [.. _monitors.Where(m => Reach(from, m))];

    private bool Running(SimMonitor m) => m.Up && !m.Paused;

    private void Round()
    {
        if (Leader is { } leader && Running(leader))
        {
            var voters = Reachable(leader);
            if (voters.Count >= Majority)
            {
                _leaseEnd = World.Now + _lease;
                _electionAt = _leaseEnd + World.Random.NextInt64(_roundInterval * 3);
                var confirmedUntil = leader.Clock.GetTimestamp() + _lease - _maxDrift;
                var view = new MonitorLeadership(Term, true, leader.Address, confirmedUntil);
                var roundTrip = World.Latency() + World.Latency();
                Tell(leader, view, roundTrip);
                foreach (var m in voters.Where(m => m != leader))
                {
                    Inform(m, World.Latency());
                }

                return;
            }
        }

        if (World.Now < Math.Max(_leaseEnd, _electionAt))
        {
            return;
        }

        var candidates = _monitors.Where(m => Running(m) && Reachable(m).Count >= Majority).ToList();
        if (candidates.Count == 0)
        {
            return;
        }

        var elected = candidates[World.Random.Next(candidates.Count)];
        Term++;
        _leader = elected;
        _leaderLife = elected.Life;
        _leaseEnd = World.Now + _lease;
        _electionAt = _leaseEnd + World.Random.NextInt64(_roundInterval * 3);
        World.Log("coord", $"term {Term}: {elected.Name} elected by {string.Join(",", Reachable(elected).Select(m => m.Name))}");

        // The new leader holds every committed entry (leader completeness): it learns the configuration first.
        var delay = World.Latency() + World.Latency();
        if (elected.Observed.Version < Committed.Version)
        {
            var committed = Committed;
            var life = elected.Life;
            World.After(delay, () => elected.Deliver(life, () => elected.ObserveConfig(committed)));
        }

        Tell(elected, new MonitorLeadership(Term, true, elected.Address, elected.Clock.GetTimestamp() + _lease - _maxDrift), delay);
        foreach (var m in Reachable(elected).Where(m => m != elected))
        {
            Inform(m, World.Latency());
        }
    }

    /// <summary>Brings a follower the current leader, term and committed configuration.</summary>
    private void Inform(SimMonitor follower, long delay)
    {
        if (follower.Observed.Version < Committed.Version)
        {
            var committed = Committed;
            var life = follower.Life;
            World.After(delay, () => follower.Deliver(life, () => follower.ObserveConfig(committed)));
        }

        if (follower.ViewTerm < Term || follower.ViewActive)
        {
            Tell(follower, new MonitorLeadership(Term, false, _leader!.Address, 0), delay);
        }
    }

    private void Tell(SimMonitor monitor, MonitorLeadership view, long delay)
    {
        var life = monitor.Life;
        World.After(delay, () => monitor.Deliver(life, () => monitor.ApplyLeadership(view)));
    }

    /// <summary>
    /// A monitor's compare-and-set. It commits only if the proposer is still the leader of the term it proposed in
    /// and reaches a majority when the write is replicated. A deposed leader that reaches a majority learns the newer
    /// term with the refusal (Raft's higher-term reply); one that reaches none hears nothing until its request times out.
    /// </summary>
    public void Propose(SimMonitor proposer, long term, long expectedVersion, ClusterConfig next)
    {
        var life = proposer.Life;
        World.After(World.Latency() + World.Latency() + 100 + World.Random.Next(3000), () =>
        {
            if (!proposer.Up || proposer.Life != life)
            {
                return; // the proposer crashed before the write was replicated: it is lost with it
            }

            var reachesMajority = Running(proposer) && Reachable(proposer).Count >= Majority;
            var leads = Leader == proposer && term == Term && reachesMajority;
            if (leads && Committed.Version == expectedVersion)
            {
                Committed = next;
                World.Log("coord", $"committed v{next.Version} e{next.Epoch} from {proposer.Name}");
                proposer.Deliver(life, () => proposer.OnConfigWritten(true, next));
                foreach (var m in Reachable(proposer).Where(m => m != proposer))
                {
                    Inform(m, World.Latency());
                }

                return;
            }

            if (leads)
            {
                proposer.Deliver(life, () => proposer.OnConfigWritten(false, Committed));
                return;
            }

            if (reachesMajority)
            {
                // Not the leader of that term any more, and the others say so.
                if (Leader != proposer)
                {
                    Tell(proposer, new MonitorLeadership(Term, false, Leader?.Address ?? NodeAddress.None, 0), 0);
                }

                var committed = Committed;
                proposer.Deliver(life, () => proposer.OnConfigWritten(false, committed));
                return;
            }

            var observed = proposer.Observed;
            World.After(World.Uniform(TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(400)), () => proposer.Deliver(life, () => proposer.OnConfigWritten(false, observed)));
        });
    }
}

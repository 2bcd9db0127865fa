using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>A server heartbeating a group of monitors: leases only from the active one of the newest term; configurations from any.</summary>
public class MonitorGroupServerTests
{
    /// <summary>A primary whose lease has lapsed (460 ms after its last renewal, with the 0.9 safety factor).</summary>
    private static ServerHarness PrimaryWithoutLease()
    {
        var p = StartPrimary();
        p.Time.Advance(TimeSpan.FromMilliseconds(460));
        p.Tick();
        Assert.False(p.Node.HasLease, "fixture: the lease should have lapsed");
        return p;
    }

    [Fact]
    public void Primary_takes_a_lease_only_from_the_active_monitor()
    {
        var p = PrimaryWithoutLease();

        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 1, MonitorTerm: 1, FromActive: false)));
        Assert.False(p.Node.HasLease);

        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 1, MonitorTerm: 1, FromActive: true)));
        Assert.True(p.Node.HasLease);
    }

    [Fact]
    public void Primary_ignores_a_lease_from_a_monitor_term_older_than_one_it_has_seen()
    {
        var p = PrimaryWithoutLease();

        // A follower of term 5 answers first (no lease), so term 5 is known; the deposed term-4 monitor still grants.
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, 0, 2, MonitorTerm: 5, FromActive: false)));
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 1, MonitorTerm: 4, FromActive: true)));

        Assert.Equal(5, p.Node.HighestMonitorTerm);
        Assert.False(p.Node.HasLease);

        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 3, MonitorTerm: 5, FromActive: true)));
        Assert.True(p.Node.HasLease);
    }

    [Fact]
    public void Primary_that_promised_to_step_down_says_so_again_to_a_new_active_monitor()
    {
        var p = StartPrimary();
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 1, MonitorTerm: 1, FromActive: true)));
        p.Deliver(new StepDown(1, B1));
        p.AckFrom(B1, 1);
        Assert.True(Assert.Single(p.Env.ToMonitor<StepDownResult>()).Ready);

        // The same monitor again: nothing repeated. A new term's active monitor: the readiness is repeated once.
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 1, MonitorTerm: 1, FromActive: true)));
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, 0, 2, MonitorTerm: 2, FromActive: false)));
        Assert.Single(p.Env.ToMonitor<StepDownResult>());
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 2, MonitorTerm: 2, FromActive: true)));
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 2, MonitorTerm: 2, FromActive: true)));

        Assert.Equal(2UL, p.Node.ActiveMonitorIncarnation);
        var results = p.Env.ToMonitor<StepDownResult>();
        Assert.Equal(2, results.Count);
        Assert.Equal((1L, P, B1, true), (results[1].Epoch, results[1].From, results[1].Target, results[1].Ready));
        Assert.False(p.Node.HasLease);

        // The new monitor, knowing of no switchover, releases it: it serves again.
        p.Deliver(new StepDown(1, NodeAddress.None));
        p.Input(n => n.Handle(new HeartbeatAck(n.Config, p.Now, LeaseMs, 2, MonitorTerm: 2, FromActive: true)));
        Assert.True(p.Node.HasLease);
    }

    [Fact]
    public void Server_adopts_a_newer_configuration_from_any_monitor_and_never_an_older_one()
    {
        var b = new ServerHarness(B1);
        b.Input(n => n.Handle(new HeartbeatAck(Config(2, 7, P, All), b.Now, 0, 2, MonitorTerm: 3, FromActive: false)));
        Assert.Equal((2L, 7L), (b.Node.Config.Epoch, b.Node.Config.Version));

        b.Input(n => n.Handle(new HeartbeatAck(Config(2, 6, P, [P, B1]), b.Now, 0, 1, MonitorTerm: 3, FromActive: true)));
        Assert.Equal(7, b.Node.Config.Version);
    }
}

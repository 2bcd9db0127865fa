using static Understudy.Core.Tests.Monitor.MonitorHarness;

namespace Understudy.Core.Tests.Monitor;

/// <summary>Planned handovers and forming a cluster from nothing.</summary>
public class SwitchoverAndBootstrapTests
{
    [Fact]
    public void Switchover_asks_the_primary_to_step_down_and_promotes_the_target_once_it_is_ready()
    {
        var m = Stable();

        m.AdminRequest(AdminCommand.Switchover, B1);
        Assert.Equal(new StepDown(1, B1), Assert.Single(m.Env.SentTo<StepDown>(P)));
        Assert.Equal(FailoverPhase.Switchover, m.Node.Phase);
        Assert.Empty(m.Env.Proposals);

        // Until it says ready, the primary keeps serving under its lease.
        m.Beat(P);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));

        m.Node.Handle(new StepDownResult(1, P, B1, true, 10, string.Empty));
        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(B1, proposal.Next.Primary);
        Assert.Equal(2, proposal.Next.Epoch);
        Assert.Equal(All.Order(), proposal.Next.InSync); // the old primary holds the whole log: it stays in sync

        m.Beat(P);
        Assert.Equal(0, m.LastLeaseGrantedTo(P));

        m.Store();
        Assert.True(Assert.Single(m.AdminResponses).Ok);
        Assert.Equal(500, m.Env.SentTo<ConfigPush>(B1)[^1].LeaseMs);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
    }

    [Fact]
    public void Switchover_readiness_during_an_in_sync_change_promotes_only_once_that_change_is_stored()
    {
        // B2 is out of sync; the primary asks for it back just before the switchover's readiness arrives.
        var m = Stable(inSync: [P, B1]);
        m.AdminRequest(AdminCommand.Switchover, B1);
        m.Node.Handle(new InSyncChange(7, P, 1, 3, InSyncOp.Add, B2));
        var change = Assert.Single(m.Env.Proposals);

        m.Node.Handle(new StepDownResult(1, P, B1, true, 10, string.Empty));

        // One compare-and-set at a time: the store's answer to the in-sync change must not be taken as the promotion's.
        Assert.Equal(change, Assert.Single(m.Env.Proposals));
        m.Beat(P);
        Assert.Equal(0, m.LastLeaseGrantedTo(P)); // the primary promised to step down: no lease from here on

        m.Store();
        Assert.True(Assert.Single(m.Env.SentTo<InSyncChangeResult>(P)).Accepted);
        var promotion = m.Env.Proposals[^1];
        Assert.Equal(B1, promotion.Next.Primary);
        Assert.Equal(2, promotion.Next.Epoch);
        Assert.Equal(4, promotion.ExpectedVersion);
        Assert.Empty(m.AdminResponses);

        m.Store();
        Assert.True(Assert.Single(m.AdminResponses).Ok);
        Assert.Equal(B1, m.Node.Config.Primary);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
    }

    [Fact]
    public void Switchover_whose_target_left_the_in_sync_set_meanwhile_is_called_off_and_the_primary_released()
    {
        var m = Stable();
        m.AdminRequest(AdminCommand.Switchover, B1);
        m.Node.Handle(new InSyncChange(7, P, 1, 3, InSyncOp.Remove, B1));
        m.Node.Handle(new StepDownResult(1, P, B1, true, 10, string.Empty));

        m.Store();

        Assert.DoesNotContain(m.Env.Proposals, p => p.Next.Primary == B1);
        Assert.False(Assert.Single(m.AdminResponses).Ok);
        Assert.Equal(new StepDown(1, NodeAddress.None), m.Env.SentTo<StepDown>(P)[^1]);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
        m.Beat(P);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Switchover_without_a_target_picks_the_best_in_sync_backup()
    {
        var m = Stable();

        m.AdminRequest(AdminCommand.Switchover, NodeAddress.None);

        Assert.Equal(new StepDown(1, B1), Assert.Single(m.Env.SentTo<StepDown>(P)));
    }

    [Fact]
    public void Switchover_is_called_off_when_the_target_does_not_catch_up_in_time()
    {
        var m = Stable();
        m.AdminRequest(AdminCommand.Switchover, B1);

        m.Run(TimeSpan.FromMilliseconds(1100), All);

        Assert.Equal(new StepDown(1, NodeAddress.None), m.Env.SentTo<StepDown>(P)[^1]);
        Assert.False(Assert.Single(m.AdminResponses).Ok);
        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Switchover_readiness_arriving_after_the_timeout_releases_the_primary_instead_of_promoting()
    {
        var m = Stable();
        m.AdminRequest(AdminCommand.Switchover, B1);
        m.Run(TimeSpan.FromMilliseconds(1100), All);
        m.Env.Clear();

        m.Node.Handle(new StepDownResult(1, P, B1, true, 10, string.Empty));

        Assert.Empty(m.Env.Proposals);
        Assert.Equal(new StepDown(1, NodeAddress.None), Assert.Single(m.Env.SentTo<StepDown>(P)));
    }

    [Fact]
    public void Switchover_fails_when_the_primary_cannot_hand_over()
    {
        var m = Stable();
        m.AdminRequest(AdminCommand.Switchover, B1);

        m.Node.Handle(new StepDownResult(1, P, B1, false, 10, "target did not catch up"));

        Assert.False(Assert.Single(m.AdminResponses).Ok);
        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
    }

    [Fact]
    public void Switchover_to_an_out_of_sync_server_is_refused()
    {
        var m = Stable(inSync: [P, B2]);

        m.AdminRequest(AdminCommand.Switchover, B1);

        Assert.False(Assert.Single(m.AdminResponses).Ok);
        Assert.Empty(m.Env.SentTo<StepDown>(P));
    }

    [Fact]
    public void Switchover_to_a_dead_server_or_the_primary_itself_is_refused()
    {
        var m = Stable();
        m.Crash(B2);
        m.Env.Clear();

        m.AdminRequest(AdminCommand.Switchover, B2);
        m.AdminRequest(AdminCommand.Switchover, P);

        Assert.All(m.AdminResponses, r => Assert.False(r.Ok));
        Assert.Equal(2, m.AdminResponses.Count);
        Assert.Empty(m.Env.SentTo<StepDown>(P));
    }

    [Fact]
    public void Bootstrap_picks_the_longest_log_then_priority_and_starts_above_any_epoch_servers_report()
    {
        var m = new MonitorHarness(ClusterConfig.Initial);

        // P saw epoch 3 but its log ends in epoch 2 at 10; B1's log ends in epoch 2 at 12; B2 has more entries, of an older epoch.
        void BeatAll()
        {
            m.Beat(P, ServerRole.Backup, epoch: 3, lastIndex: 10, lastEpoch: 2);
            m.Beat(B1, ServerRole.Backup, epoch: 2, lastIndex: 12, lastEpoch: 2);
            m.Beat(B2, ServerRole.Backup, epoch: 1, lastIndex: 20, lastEpoch: 1, priority: 9999);
        }

        BeatAll();
        for (var i = 0; i < 5; i++)
        {
            m.Time.Advance(Step);
            BeatAll();
            m.Node.Tick();
        }

        Assert.Empty(m.Env.Proposals); // 250 ms: others may still be registering

        m.Time.Advance(Step);
        BeatAll();
        m.Node.Tick();

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(0, proposal.ExpectedVersion);
        Assert.Equal(B1, proposal.Next.Primary);
        Assert.Equal(4, proposal.Next.Epoch);
        Assert.Equal(1, proposal.Next.Version);
        Assert.Equal(new[] { B1 }, proposal.Next.InSync);
        Assert.Equal(All.Order(), proposal.Next.Members.Select(x => x.Address));
        Assert.Equal(9999, proposal.Next.PriorityOf(B2));

        m.Store();
        Assert.Equal(500, Assert.Single(m.Env.SentTo<ConfigPush>(B1)).LeaseMs);
        Assert.Contains(m.Env.Events, e => e.Kind == MonitorEventKind.ClusterFormed);
    }

    [Fact]
    public void Bootstrap_with_equal_logs_picks_the_highest_priority()
    {
        var m = new MonitorHarness(ClusterConfig.Initial);

        for (var i = 0; i <= 6; i++)
        {
            m.Beat(P, ServerRole.Backup, epoch: 0, lastIndex: 0, lastEpoch: 0);
            m.Beat(B1, ServerRole.Backup, epoch: 0, lastIndex: 0, lastEpoch: 0, priority: 9000);
            m.Beat(B2, ServerRole.Backup, epoch: 0, lastIndex: 0, lastEpoch: 0);
            m.Time.Advance(Step);
            m.Node.Tick();
        }

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(B1, proposal.Next.Primary);
        Assert.Equal(1, proposal.Next.Epoch);
    }
}

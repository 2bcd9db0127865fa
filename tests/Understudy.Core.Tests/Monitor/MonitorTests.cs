using static Understudy.Core.Tests.Monitor.MonitorHarness;

namespace Understudy.Core.Tests.Monitor;

/// <summary>The monitor's failover rules: who is promoted, when, and what is stored before anyone hears of it.</summary>
public partial class MonitorTests
{
    [Fact]
    public void Monitor_promotes_highest_priority_alive_in_sync_backup()
    {
        var m = Stable();

        m.Crash(P);

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(B1, proposal.Next.Primary); // 8089 beats 8088
    }

    [Fact]
    public void Monitor_skips_a_backup_that_is_not_alive_when_promoting()
    {
        var m = Stable();
        m.Crash(B1);
        m.Env.Clear();

        m.Crash(P);

        Assert.Equal(B2, Assert.Single(m.Env.Proposals).Next.Primary);
    }

    [Fact]
    public void Monitor_promotes_by_reported_priority_not_port_when_one_is_set()
    {
        var m = Stable();
        m.Beat(B2, priority: 9000);
        m.Store(); // the membership change recording the new priority
        m.Env.Clear();

        m.Crash(P);

        Assert.Equal(B2, Assert.Single(m.Env.Proposals).Next.Primary);
    }

    [Fact]
    public void Monitor_never_promotes_an_out_of_sync_server_automatically()
    {
        // B1 has the higher priority but is out of sync.
        var m = Stable(inSync: [P, B2]);

        m.Crash(P);

        Assert.Equal(B2, Assert.Single(m.Env.Proposals).Next.Primary);
    }

    [Fact]
    public void Monitor_waits_with_no_candidate_rather_than_promote_out_of_sync()
    {
        var m = Stable(inSync: [P]);

        m.Crash(P);
        m.Run(TimeSpan.FromSeconds(2), B1, B2);

        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.NoCandidate, m.Node.Phase);
        Assert.Single(m.Env.Events, e => e.Kind == MonitorEventKind.NoCandidate);

        // The old primary restarts with its log on disk: it holds every acknowledged write, so it may lead the next epoch.
        m.Beat(P, ServerRole.Backup, epoch: 1, restarted: true);
        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(P, proposal.Next.Primary);
        Assert.Equal(2, proposal.Next.Epoch);
    }

    [Fact]
    public void Monitor_never_promotes_a_restarted_server_that_lost_unsynced_writes()
    {
        var m = Stable(inSync: [P]);
        m.Crash(P);

        m.Beat(P, ServerRole.Backup, epoch: 1, restarted: true, durable: false);
        m.Run(TimeSpan.FromSeconds(1), P, B1, B2);

        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.NoCandidate, m.Node.Phase);
    }

    [Fact]
    public void Monitor_takes_a_restarted_backup_that_lost_unsynced_writes_out_of_the_in_sync_set()
    {
        var m = Stable();

        m.Beat(B2, restarted: true, durable: false);

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(new[] { B1, P }, proposal.Next.InSync);
        Assert.Equal(1, proposal.Next.Epoch);
        m.Store();
        Assert.All(All, s => Assert.Single(m.Env.SentTo<ConfigPush>(s)));
    }

    [Fact]
    public void Monitor_records_a_newly_seen_server_as_a_member_outside_the_in_sync_set()
    {
        var m = Stable();
        var newcomer = new NodeAddress("127.0.0.1", 8087);

        m.Beat(newcomer, ServerRole.Backup, epoch: 0, lastIndex: 0);

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.True(proposal.Next.IsMember(newcomer));
        Assert.False(proposal.Next.IsInSync(newcomer));
        Assert.Equal(1, proposal.Next.Epoch);
    }

    [Fact]
    public void Monitor_waits_for_lease_expiry_before_promoting_a_silent_primary()
    {
        var m = Stable();
        m.Beat(P);
        Assert.Equal(DefaultOptions.LeaseDuration.TotalMilliseconds, m.LastLeaseGrantedTo(P));

        // P's last heartbeat (and lease grant) was just now. It goes silent: suspected after 300 ms.
        m.Run(TimeSpan.FromMilliseconds(350), B1, B2);
        Assert.Equal(FailoverPhase.AwaitingLeaseExpiry, m.Node.Phase);
        Assert.Empty(m.Env.Proposals);

        m.Run(TimeSpan.FromMilliseconds(100), B1, B2); // 450 ms
        Assert.Empty(m.Env.Proposals);

        m.Run(TimeSpan.FromMilliseconds(50), B1, B2); // 500 ms: the lease has surely expired
        Assert.Equal(B1, Assert.Single(m.Env.Proposals).Next.Primary);
    }

    [Fact]
    public void Monitor_does_not_promote_when_a_suspected_primary_comes_back_within_its_lease()
    {
        var m = Stable();
        m.Run(TimeSpan.FromMilliseconds(400), B1, B2);
        Assert.Equal(FailoverPhase.AwaitingLeaseExpiry, m.Node.Phase);

        m.Run(TimeSpan.FromSeconds(1), All);

        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Monitor_promotes_at_once_when_primary_connection_drops_and_port_refuses()
    {
        var m = Stable();

        m.Node.OnServerConnectionLost(P);
        Assert.Contains(new Probed(P), m.Env.Calls);
        Assert.Empty(m.Env.Proposals);

        m.Node.OnProbeResult(P, ProbeOutcome.Refused);
        Assert.Equal(B1, Assert.Single(m.Env.Proposals).Next.Primary); // no waiting for the lease
    }

    [Theory]
    [InlineData(ProbeOutcome.Accepted)] // a paused process: the kernel still accepts
    [InlineData(ProbeOutcome.TimedOut)] // a partition
    public void Monitor_does_not_treat_a_dropped_connection_as_death_unless_the_port_refuses(ProbeOutcome outcome)
    {
        var m = Stable();

        m.Node.OnServerConnectionLost(P);
        m.Node.OnProbeResult(P, outcome);
        m.Run(TimeSpan.FromMilliseconds(250), B1, B2);

        Assert.Empty(m.Env.Proposals);
        Assert.NotEqual(Liveness.Down, m.Node.Members.Single(x => x.Address == P).Liveness);
    }

    [Fact]
    public void Monitor_probes_again_while_the_connection_stays_lost_and_promotes_when_the_port_refuses()
    {
        var m = Stable();

        // A killed process closed its heartbeat connection a moment before its listening socket.
        m.Node.OnServerConnectionLost(P);
        m.Node.OnProbeResult(P, ProbeOutcome.Accepted);
        Assert.Single(m.Env.Calls.OfType<Probed>());

        m.Run(TimeSpan.FromMilliseconds(50), B1, B2);
        Assert.True(m.Env.Calls.OfType<Probed>().Count() >= 2, "the monitor should probe again while the connection stays lost");
        Assert.Empty(m.Env.Proposals);

        m.Node.OnProbeResult(P, ProbeOutcome.Refused);
        Assert.Equal(B1, Assert.Single(m.Env.Proposals).Next.Primary); // no waiting for the failure timeout or the lease
    }

    [Fact]
    public void Monitor_stops_probing_once_the_server_heartbeats_again()
    {
        var m = Stable();

        m.Node.OnServerConnectionLost(P);
        m.Node.OnProbeResult(P, ProbeOutcome.Accepted);
        m.Beat(P);
        var probes = m.Env.Calls.OfType<Probed>().Count();
        m.Run(TimeSpan.FromMilliseconds(100), P, B1, B2);

        Assert.Equal(probes, m.Env.Calls.OfType<Probed>().Count());
        Assert.Empty(m.Env.Proposals);
    }

    [Fact]
    public void Monitor_ignores_a_refused_probe_once_the_server_has_reconnected()
    {
        var m = Stable();

        m.Node.OnServerConnectionLost(P);
        m.Beat(P); // it came back before the probe's answer
        m.Node.OnProbeResult(P, ProbeOutcome.Refused);

        Assert.Empty(m.Env.Proposals);
        Assert.Equal(Liveness.Alive, m.Node.Members.Single(x => x.Address == P).Liveness);
    }

    [Fact]
    public void Monitor_treats_a_restarted_primary_as_dead()
    {
        var m = Stable();

        // Within its lease, P's heartbeat comes from a new process that recovered epoch 1.
        m.Beat(P, ServerRole.Backup, epoch: 1, restarted: true);

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(2, proposal.Next.Epoch);
        Assert.Equal(0, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Monitor_keeps_a_new_process_that_took_the_promotion_as_primary()
    {
        // Found by the simulator (seed 3507): the monitor promoted B1 on a stale heartbeat from B1's
        // previous process; the push reached B1's new process, which became primary. Its heartbeat comes
        // from a new incarnation, yet it leads the epoch: it must keep its lease, not be failed over.
        var m = Stable();
        m.Crash(B1);
        m.Beat(B1, restarted: true);
        m.Env.Clear();
        m.Crash(P);
        m.Store();
        Assert.Equal(B1, m.Node.Config.Primary);
        m.Env.Clear();

        m.Beat(B1, ServerRole.Primary, epoch: 2, restarted: true);

        Assert.Empty(m.Env.Proposals);
        Assert.NotEqual(0, m.LastLeaseGrantedTo(B1));
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
    }

    [Fact]
    public void Monitor_treats_a_primary_reporting_itself_backup_in_its_own_epoch_as_gone()
    {
        var m = Stable();

        m.Beat(P, ServerRole.Backup, epoch: 1);

        Assert.Equal(2, Assert.Single(m.Env.Proposals).Next.Epoch);
    }
}

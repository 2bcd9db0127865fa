using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Core.Tests.Fakes;
using Understudy.Protocol;
using static Understudy.Core.Tests.Fakes.Cluster;
using static Understudy.Core.Tests.Monitor.MonitorHarness;

namespace Understudy.Core.Tests.Monitor;

/// <summary>The monitor's failover rules: who is promoted, when, and what is stored before anyone hears of it.</summary>
public class MonitorTests
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

    [Fact]
    public void Monitor_bumps_epoch_and_version_on_promotion_and_stores_config_before_announcing_it()
    {
        var m = Stable();
        m.Node.Handle(new ClientRef(7), new PrimaryQuery(70, Subscribe: true));
        m.Env.Clear();

        m.Crash(P);
        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(3, proposal.ExpectedVersion);
        Assert.Equal(2, proposal.Next.Epoch);
        Assert.Equal(4, proposal.Next.Version);
        Assert.Equal(B1, proposal.Next.Primary);
        Assert.Equal([B2, B1], proposal.Next.InSync); // the dead primary is out

        // While the store works, nobody hears of the new configuration, and nobody gets a lease.
        m.Time.Advance(Step);
        m.Beat(B1);
        m.Beat(B2);
        m.Node.Tick();
        Assert.Empty(m.Env.SentToServers<ConfigPush>());
        Assert.Empty(m.Env.SentToClient<PrimaryUpdate>(new ClientRef(7)));
        Assert.All(m.Env.SentToServers<HeartbeatAck>(), a => Assert.Equal((1L, 0), (a.Config.Epoch, a.LeaseMs)));
        Assert.Single(m.Env.Proposals);

        var stored = m.Store();

        Assert.Same(stored, m.Node.Config);
        foreach (var server in All)
        {
            var push = Assert.Single(m.Env.SentTo<ConfigPush>(server));
            Assert.True(push.Config.SameAs(stored));
        }

        var promotion = m.Env.SentTo<ConfigPush>(B1)[0];
        Assert.Equal(500, promotion.LeaseMs);
        Assert.Equal(m.Env.Calls.OfType<MonitorSentToServer>().Select(s => s.Message).OfType<HeartbeatAck>().Last(a => a.Config.Epoch == 1).EchoSentAt, promotion.LeaseBase);
        Assert.Equal(new PrimaryUpdate(2, 4, B1), Assert.Single(m.Env.SentToClient<PrimaryUpdate>(new ClientRef(7))));
        Assert.Contains(m.Env.Events, e => e.Kind == MonitorEventKind.Promoted);
    }

    [Fact]
    public void Monitor_announces_nothing_when_the_store_refuses_the_proposal()
    {
        var m = Stable();
        m.Crash(P);

        m.Store(committed: false);

        Assert.Empty(m.Env.SentToServers<ConfigPush>());
        Assert.Equal(1, m.Node.Config.Epoch);
        Assert.Contains(m.Env.Events, e => e.Kind == MonitorEventKind.ConfigStoreRejected);
    }

    public static TheoryData<string, InSyncChange> BadInSyncChanges() => new()
    {
        { "not the primary", new InSyncChange(1, B1, 1, 3, InSyncOp.Remove, B2) },
        { "older epoch", new InSyncChange(1, P, 0, 3, InSyncOp.Remove, B2) },
        { "newer epoch", new InSyncChange(1, P, 2, 3, InSyncOp.Remove, B2) },
        { "older version", new InSyncChange(1, P, 1, 2, InSyncOp.Remove, B2) },
        { "removing the primary", new InSyncChange(1, P, 1, 3, InSyncOp.Remove, P) },
        { "adding a member already in sync", new InSyncChange(1, P, 1, 3, InSyncOp.Add, B2) },
        { "adding a stranger", new InSyncChange(1, P, 1, 3, InSyncOp.Add, new NodeAddress("127.0.0.1", 9999)) },
    };

    [Theory]
    [MemberData(nameof(BadInSyncChanges))]
    public void Monitor_refuses_in_sync_change_not_from_current_primary_at_current_version(string why, InSyncChange request)
    {
        var m = Stable();

        m.Node.Handle(request);

        Assert.Empty(m.Env.Proposals);
        var answer = Assert.Single(m.Env.SentTo<InSyncChangeResult>(request.From));
        Assert.False(answer.Accepted, why);
        Assert.Equal(request.RequestId, answer.RequestId);
        Assert.Equal(3, answer.Config.Version);
    }

    [Fact]
    public void Monitor_approves_in_sync_change_only_from_current_primary_at_current_version()
    {
        var m = Stable();

        m.Node.Handle(new InSyncChange(8, P, 1, 3, InSyncOp.Remove, B2));
        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(3, proposal.ExpectedVersion);
        Assert.Equal(new[] { B1, P }, proposal.Next.InSync);
        Assert.Equal(4, proposal.Next.Version);
        Assert.Equal(1, proposal.Next.Epoch);
        Assert.Empty(m.Env.SentTo<InSyncChangeResult>(P)); // not before it is stored

        // A second request while the first is being stored is refused, not queued behind a stale version.
        m.Node.Handle(new InSyncChange(9, P, 1, 3, InSyncOp.Remove, B1));
        Assert.False(Assert.Single(m.Env.SentTo<InSyncChangeResult>(P)).Accepted);

        m.Store();
        var answer = m.Env.SentTo<InSyncChangeResult>(P)[^1];
        Assert.True(answer.Accepted);
        Assert.Equal(8, answer.RequestId);
        Assert.Equal(new[] { B1, P }, answer.Config.InSync);
        Assert.Single(m.Env.Proposals);
    }

    [Fact]
    public void Monitor_grants_lease_only_to_primary_of_current_epoch()
    {
        var m = Stable();

        m.Beat(P);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));

        m.Beat(B1);
        Assert.Equal(0, m.LastLeaseGrantedTo(B1));

        m.Beat(B1, ServerRole.Primary); // claims to lead, but the configuration says otherwise
        Assert.Equal(0, m.LastLeaseGrantedTo(B1));

        m.Beat(P, ServerRole.Primary, epoch: 0); // leads an older epoch
        Assert.Equal(0, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Monitor_grants_no_lease_while_a_promotion_is_being_stored()
    {
        var m = Stable();
        m.Beat(P, ServerRole.Backup, epoch: 1, restarted: true);
        Assert.Single(m.Env.Proposals);

        m.Beat(P, ServerRole.Primary, epoch: 1);

        Assert.Equal(0, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Restarted_monitor_waits_a_full_lease_and_the_clock_drift_before_promoting()
    {
        // A new monitor process cannot know what lease its predecessor granted: it assumes a full one from its start,
        // plus the drift clocks may show over it (rule 2, as for any newly active monitor).
        var m = new MonitorHarness(Config(1, 3, P, All));

        m.Run(TimeSpan.FromMilliseconds(500), B1, B2);
        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.AwaitingLeaseExpiry, m.Node.Phase);

        m.Run(TimeSpan.FromMilliseconds(50), B1, B2);
        Assert.Equal(B1, Assert.Single(m.Env.Proposals).Next.Primary);
    }

    [Fact]
    public void Restarted_monitor_never_goes_back_to_an_older_epoch()
    {
        var m = new MonitorHarness(Config(4, 9, P, All));
        m.Run(TimeSpan.FromMilliseconds(600), B1, B2);

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(5, proposal.Next.Epoch);
        Assert.Equal(9, proposal.ExpectedVersion);
    }

    [Fact]
    public void Monitor_pushes_new_primary_to_subscribed_clients()
    {
        var m = Stable();
        var subscriber = new ClientRef(7);
        var asker = new ClientRef(8);
        var gone = new ClientRef(9);
        m.Node.Handle(subscriber, new PrimaryQuery(70, Subscribe: true));
        m.Node.Handle(asker, new PrimaryQuery(80, Subscribe: false));
        m.Node.Handle(gone, new PrimaryQuery(90, Subscribe: true));
        m.Node.OnClientDisconnected(gone);
        Assert.Equal(new PrimaryUpdate(1, 3, P), Assert.Single(m.Env.SentToClient<PrimaryUpdate>(subscriber)));
        Assert.Equal(new PrimaryUpdate(1, 3, P), Assert.Single(m.Env.SentToClient<PrimaryUpdate>(asker)));

        m.Crash(P);
        m.Store();

        Assert.Equal(new PrimaryUpdate(2, 4, B1), m.Env.SentToClient<PrimaryUpdate>(subscriber)[^1]);
        Assert.Single(m.Env.SentToClient<PrimaryUpdate>(asker));
        Assert.Single(m.Env.SentToClient<PrimaryUpdate>(gone));
    }

    [Fact]
    public void Forced_promotion_waits_for_the_lease_and_reports_unsafe()
    {
        var m = Stable(inSync: [P]);

        // P goes silent (a partition: no connection drop); the operator forces B2, which is out of sync.
        m.Run(TimeSpan.FromMilliseconds(50), B1, B2);
        m.AdminRequest(AdminCommand.ForcePromote, B2);
        var warning = Assert.Single(m.Env.Events, e => e.Kind == MonitorEventKind.ForcedPromotion);
        Assert.Contains("UNSAFE", warning.Detail, StringComparison.Ordinal);

        m.Run(TimeSpan.FromMilliseconds(350), B1, B2); // 400 ms since P's lease
        Assert.Empty(m.Env.Proposals);
        Assert.Empty(m.AdminResponses);

        m.Run(TimeSpan.FromMilliseconds(100), B1, B2); // 500 ms
        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(B2, proposal.Next.Primary);
        Assert.Equal(new[] { B2 }, proposal.Next.InSync);
        Assert.Equal(2, proposal.Next.Epoch);

        m.Store();
        Assert.True(Assert.Single(m.AdminResponses).Ok);
    }

    [Fact]
    public void Forced_promotion_of_an_in_sync_backup_is_not_reported_unsafe()
    {
        var m = Stable();
        m.Crash(P);
        m.Store();
        m.Env.Clear();

        m.AdminRequest(AdminCommand.ForcePromote, B2);

        var note = Assert.Single(m.Env.Events, e => e.Kind == MonitorEventKind.ForcedPromotion);
        Assert.DoesNotContain("UNSAFE", note.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Forced_promotion_while_the_primary_is_alive_does_not_leave_the_cluster_without_a_lease_forever()
    {
        var m = Stable(inSync: [P]);

        m.AdminRequest(AdminCommand.ForcePromote, B2);
        m.Run(TimeSpan.FromSeconds(3), All);

        // Either the operator is told no (and the primary keeps its lease), or B2 is promoted once P's lease ran out.
        var refused = m.AdminResponses.Any(r => !r.Ok);
        var promoted = m.Env.Proposals.Any(p => p.Next.Primary == B2);
        Assert.True(refused || promoted, $"after 3 s: no answer to the operator and no promotion; phase {m.Node.Phase}");
        if (!promoted)
        {
            Assert.Equal(500, m.LastLeaseGrantedTo(P));
        }
    }

    [Fact]
    public void Forced_promotion_is_refused_for_a_server_that_is_not_alive()
    {
        var m = Stable();
        m.Crash(B2);

        m.AdminRequest(AdminCommand.ForcePromote, B2);

        Assert.False(Assert.Single(m.AdminResponses).Ok);
        Assert.DoesNotContain(m.Env.Events, e => e.Kind == MonitorEventKind.ForcedPromotion);
    }
}

using Microsoft.Extensions.Time.Testing;

namespace Understudy.Core.Tests.Monitor;

/// <summary>
/// A monitor in a group of several: followers answer and track but decide nothing, and the lease rules that keep
/// two primaries from serving across a change of active monitor (docs/ARCHITECTURE.md, "The monitor group and lease safety").
/// </summary>
public class MonitorGroupTests
{
    private static readonly NodeAddress Self = new("127.0.0.1", 9000);
    private static readonly NodeAddress OtherMonitor = new("127.0.0.1", 9100);

    private static MonitorLeadership Follower(long term = 1) => new(term, false, OtherMonitor, 0);

    private static MonitorLeadership Active(FakeTimeProvider time, long term, double confirmedForMs = 60_000) =>
        new(term, true, Self, At(time, confirmedForMs));

    private static long At(FakeTimeProvider time, double ms) => time.GetTimestamp() + (long)(ms * time.TimestampFrequency / 1000);

    /// <summary>A follower that has watched a healthy cluster (epoch 1, P primary) for a second; the recording starts empty.</summary>
    private static MonitorHarness WatchingFollower(params NodeAddress[] heartbeating)
    {
        var m = new MonitorHarness(Config(1, 3, P, All), leadership: Follower());
        m.Run(TimeSpan.FromSeconds(1), heartbeating.Length == 0 ? All : heartbeating);
        m.Env.Clear();
        return m;
    }

    private static List<MonitorEvent> EventsOf(MonitorHarness m, MonitorEventKind kind) => [.. m.Env.Events.Where(e => e.Kind == kind)];

    // ------------------------------------------------------------------ followers

    [Fact]
    public void Follower_answers_heartbeats_with_its_configuration_and_no_lease()
    {
        var m = WatchingFollower();
        m.Beat(P);

        var ack = m.Env.SentTo<HeartbeatAck>(P)[^1];
        Assert.Equal((0, false, 1L, 1L, 3L), (ack.LeaseMs, ack.FromActive, ack.MonitorTerm, ack.Config.Epoch, ack.Config.Version));
        Assert.False(m.Node.IsActive);
        Assert.Equal(0, m.Node.LeaseRemainingMs);
    }

    [Fact]
    public void Follower_tracks_health_but_never_probes_or_proposes_when_the_primary_goes()
    {
        var m = WatchingFollower();
        m.Node.OnServerConnectionLost(P);
        m.Run(TimeSpan.FromSeconds(2), B1, B2);

        Assert.Empty(m.Env.Of<Probed>());
        Assert.Empty(m.Env.Proposals);
        Assert.Equal(Liveness.Suspected, m.Node.Members.Single(x => x.Address == P).Liveness);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
        m.Node.CheckInvariants();
    }

    [Theory]
    [InlineData(AdminCommand.Switchover)]
    [InlineData(AdminCommand.ForcePromote)]
    public void Follower_refuses_operator_commands_naming_the_active_monitor(AdminCommand command)
    {
        var m = WatchingFollower();
        m.AdminRequest(command, B1);

        var response = Assert.Single(m.AdminResponses);
        Assert.False(response.Ok);
        Assert.True(response.IsNotActiveRefusal);
        Assert.Equal(OtherMonitor, response.ActiveMonitor);
        Assert.Contains(OtherMonitor.ToString(), response.Message, StringComparison.Ordinal);
        Assert.Empty(m.Env.Proposals);
        Assert.Empty(m.Env.SentToServers<StepDown>());
    }

    [Fact]
    public void Follower_refuses_in_sync_changes_without_proposing()
    {
        var m = WatchingFollower();
        m.Node.Handle(new InSyncChange(1, P, 1, 3, InSyncOp.Remove, B2));

        var result = Assert.Single(m.Env.SentTo<InSyncChangeResult>(P));
        Assert.False(result.Accepted);
        Assert.Contains(OtherMonitor.ToString(), result.Reason, StringComparison.Ordinal);
        Assert.Empty(m.Env.Proposals);
    }

    [Fact]
    public void Follower_adopts_newer_observed_configurations_and_tells_subscribed_clients()
    {
        var m = WatchingFollower();
        var client = new ClientRef(42);
        m.Node.Handle(client, new PrimaryQuery(1, Subscribe: true));

        m.Node.OnConfigObserved(Config(2, 4, B1, [B1, B2]));
        m.Node.OnConfigObserved(Config(1, 3, P, All));

        Assert.Equal((2L, 4L, B1), (m.Node.Config.Epoch, m.Node.Config.Version, m.Node.Config.Primary));
        var updates = m.Env.SentToClient<PrimaryUpdate>(client);
        Assert.Equal(new PrimaryUpdate(2, 4, B1) { ActiveMonitor = OtherMonitor }, updates[^1]);
        Assert.Equal(2, updates.Count);
        m.Node.CheckInvariants();
    }

    [Fact]
    public void Follower_names_the_active_monitor_to_clients_and_tells_subscribers_when_another_becomes_active()
    {
        var m = WatchingFollower();
        var client = new ClientRef(42);
        m.Node.Handle(client, new PrimaryQuery(1, Subscribe: true));
        Assert.Equal(new PrimaryUpdate(1, 3, P) { ActiveMonitor = OtherMonitor }, Assert.Single(m.Env.SentToClient<PrimaryUpdate>(client)));

        // Only the confirmation moved: nothing to tell.
        m.Node.OnLeadership(new MonitorLeadership(1, false, OtherMonitor, 5));
        Assert.Single(m.Env.SentToClient<PrimaryUpdate>(client));

        // A new active monitor: subscribers hear its name at once, not with the next promotion.
        var third = new NodeAddress("127.0.0.1", 9200);
        m.Node.OnLeadership(Follower(2) with { Active = third });
        Assert.Equal(new PrimaryUpdate(1, 3, P) { ActiveMonitor = third }, m.Env.SentToClient<PrimaryUpdate>(client)[^1]);
        Assert.Equal(2, m.Env.SentToClient<PrimaryUpdate>(client).Count);

        // An election under way (no active known) names nobody and tells nobody.
        m.Node.OnLeadership(new MonitorLeadership(3, false, NodeAddress.None, 0));
        Assert.Equal(2, m.Env.SentToClient<PrimaryUpdate>(client).Count);
        m.Node.CheckInvariants();
    }

    [Fact]
    public void The_active_monitor_names_nobody_to_its_clients()
    {
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 1));
        var client = new ClientRef(42);
        m.Node.Handle(client, new PrimaryQuery(1, Subscribe: true));

        Assert.Equal(new PrimaryUpdate(1, 3, P), Assert.Single(m.Env.SentToClient<PrimaryUpdate>(client)));
    }

    [Fact]
    public void Follower_with_no_configuration_forms_nothing_and_takes_the_observed_one()
    {
        var m = new MonitorHarness(ClusterConfig.Initial, leadership: Follower());
        m.Run(TimeSpan.FromSeconds(1), All);
        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.Forming, m.Node.Phase);

        m.Node.OnConfigObserved(Config(3, 7, P, All));

        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
        m.Node.CheckInvariants();
    }

    // ------------------------------------------------------------------ rule 1: leases only under confirmed leadership

    [Fact]
    public void Active_monitor_grants_leases_only_while_its_leadership_is_confirmed()
    {
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 1));
        m.Run(TimeSpan.FromSeconds(1), All);
        var ack = m.Env.SentTo<HeartbeatAck>(P)[^1];
        Assert.Equal((500, true, 1L), (ack.LeaseMs, ack.FromActive, ack.MonitorTerm));

        // The quorum stops confirming: the deadline stays where it was, 100 ms from now.
        m.Node.OnLeadership(Active(time, 1, confirmedForMs: 100));
        m.Run(TimeSpan.FromMilliseconds(100), All);
        Assert.Equal(0, m.LastLeaseGrantedTo(P));
        m.Run(TimeSpan.FromMilliseconds(200), All);
        Assert.Equal(0, m.LastLeaseGrantedTo(P));
        Assert.Single(EventsOf(m, MonitorEventKind.LeadershipUnconfirmed));

        // Confirmed again: renewals resume.
        m.Node.OnLeadership(Active(time, 1, confirmedForMs: 1000));
        m.Beat(P);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));
        Assert.Empty(m.Env.Proposals);
    }

    [Fact]
    public void Lease_pushed_with_a_promotion_needs_confirmed_leadership_too()
    {
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 1));
        m.Run(TimeSpan.FromSeconds(1), All);
        m.Crash(P);
        m.Node.OnLeadership(Active(time, 1, confirmedForMs: 0));
        m.Store();

        var push = m.Env.SentTo<ConfigPush>(B1)[^1];
        Assert.Equal((B1, 0), (push.Config.Primary, push.LeaseMs));
    }

    [Fact]
    public void A_lease_granted_without_confirmed_leadership_breaks_an_invariant()
    {
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 1, confirmedForMs: 0), leaseRule: new GrantsAlways());

        Assert.Throws<InvariantViolationException>(() =>
        {
            m.Beat(P);
            m.Node.CheckInvariants();
        });
    }

    // ------------------------------------------------------------------ rule 2: no other primary while an earlier lease may run

    [Fact]
    public void Newly_active_monitor_promotes_no_other_server_before_earlier_leases_surely_expired()
    {
        var m = WatchingFollower();
        var time = m.Time;
        var activeAt = time.GetTimestamp();
        m.Node.OnLeadership(Active(time, 2));
        Assert.Single(EventsOf(m, MonitorEventKind.BecameActive));

        // P falls silent (a partition, not a crash): it may still hold a lease the previous monitor granted.
        m.Run(TimeSpan.FromMilliseconds(500), B1, B2);
        Assert.Empty(m.Env.Proposals);
        Assert.Equal(FailoverPhase.AwaitingLeaseExpiry, m.Node.Phase);

        m.Run(TimeSpan.FromMilliseconds(100), B1, B2);
        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal(B1, proposal.Next.Primary);
        var waitedMs = (time.GetTimestamp() - activeAt) * 1000.0 / time.TimestampFrequency;
        Assert.True(waitedMs >= 550, $"promoted {waitedMs} ms after becoming active; expected at least lease 500 + drift 50");
    }

    [Fact]
    public void Newly_active_monitor_promotes_at_once_when_the_primary_is_known_dead()
    {
        var m = WatchingFollower();
        m.Node.OnLeadership(Active(m.Time, 2));

        m.Crash(P);

        Assert.Contains(new Probed(P), m.Env.Of<Probed>());
        Assert.Equal(B1, Assert.Single(m.Env.Proposals).Next.Primary);
    }

    [Fact]
    public void Newly_active_monitor_refuses_a_switchover_until_earlier_leases_surely_expired()
    {
        var m = WatchingFollower();
        m.Node.OnLeadership(Active(m.Time, 2));
        m.AdminRequest(AdminCommand.Switchover, B1);
        Assert.False(Assert.Single(m.AdminResponses).Ok);
        Assert.Empty(m.Env.SentToServers<StepDown>());

        m.Run(TimeSpan.FromMilliseconds(600), All);
        m.AdminRequest(AdminCommand.Switchover, B1);
        Assert.Single(m.Env.SentTo<StepDown>(P));
    }

    // ------------------------------------------------------------------ rule 3: renewals continue at once

    [Fact]
    public void Lease_renewals_of_the_primary_continue_at_once_when_a_monitor_becomes_active()
    {
        var m = WatchingFollower();
        m.Node.OnLeadership(Active(m.Time, 2));

        m.Beat(P);

        var ack = m.Env.SentTo<HeartbeatAck>(P)[^1];
        Assert.Equal((500, true, 2L), (ack.LeaseMs, ack.FromActive, ack.MonitorTerm));
    }

    [Fact]
    public void Newly_confirmed_active_monitor_renews_the_primary_at_once_from_its_latest_heartbeat()
    {
        var m = WatchingFollower();
        var sentAt = m.Time.GetTimestamp(); // P's latest heartbeat was sent now

        m.Node.OnLeadership(Active(m.Time, 2));

        var ack = Assert.Single(m.Env.SentTo<HeartbeatAck>(P));
        Assert.Equal((500, true, 2L, sentAt), (ack.LeaseMs, ack.FromActive, ack.MonitorTerm, ack.EchoSentAt));
        m.Node.CheckInvariants();
    }

    [Fact]
    public void No_renewal_at_confirmation_from_a_heartbeat_older_than_one_interval()
    {
        var m = WatchingFollower();
        m.Time.Advance(TimeSpan.FromMilliseconds(60)); // P has not heartbeaten for more than an interval: it may hang

        m.Node.OnLeadership(Active(m.Time, 2));

        Assert.Empty(m.Env.SentTo<HeartbeatAck>(P));
    }

    [Fact]
    public void Renewal_at_confirmation_waits_for_the_confirmation_and_comes_once_per_term()
    {
        var m = WatchingFollower();
        m.Node.OnLeadership(Active(m.Time, 2, confirmedForMs: 0));
        Assert.Empty(m.Env.SentTo<HeartbeatAck>(P));

        m.Time.Advance(TimeSpan.FromMilliseconds(10));
        m.Node.OnLeadership(Active(m.Time, 2));
        m.Node.OnLeadership(Active(m.Time, 2, confirmedForMs: 70_000));

        Assert.Equal(500, Assert.Single(m.Env.SentTo<HeartbeatAck>(P)).LeaseMs);
    }

    // ------------------------------------------------------------------ rule 4: no needless failover

    [Fact]
    public void Newly_active_monitor_keeps_a_healthy_primary_it_had_not_heard_from_as_a_follower()
    {
        // P's heartbeats to this monitor lagged while it was a follower (it suspects P); they arrive once it is active.
        var m = WatchingFollower(B1, B2);
        Assert.Equal(Liveness.Suspected, m.Node.Members.Single(x => x.Address == P).Liveness);

        m.Node.OnLeadership(Active(m.Time, 2));
        m.Node.Tick();
        m.Run(TimeSpan.FromSeconds(2), All);

        Assert.Empty(m.Env.Proposals);
        Assert.Empty(EventsOf(m, MonitorEventKind.PrimaryFailed));
        Assert.Equal((1L, 3L, P), (m.Node.Config.Epoch, m.Node.Config.Version, m.Node.Config.Primary));
        Assert.Equal(500, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void Restarted_monitor_keeps_the_primary_and_its_epoch()
    {
        var m = new MonitorHarness(Config(1, 3, P, All));
        m.Beat(P);
        Assert.Equal(500, m.LastLeaseGrantedTo(P));

        m.Run(TimeSpan.FromSeconds(2), All);

        Assert.Empty(m.Env.Proposals);
        Assert.Equal((1L, P), (m.Node.Config.Epoch, m.Node.Config.Primary));
    }

    [Fact]
    public void Monitor_built_long_before_it_runs_keeps_the_primary()
    {
        // The host built the monitor, then took two seconds to join its group before reading heartbeats; a backup's
        // heartbeat happens to be read first.
        var m = new MonitorHarness(Config(1, 3, P, All));
        m.Time.Advance(TimeSpan.FromSeconds(2));
        m.Beat(B1);
        m.Node.Tick();
        m.Beat(P);
        m.Run(TimeSpan.FromSeconds(1), All);

        Assert.Empty(m.Env.Proposals);
        Assert.Empty(EventsOf(m, MonitorEventKind.PrimaryFailed));
        Assert.Equal((1L, P), (m.Node.Config.Epoch, m.Node.Config.Primary));
    }

    [Fact]
    public void Newly_active_monitor_never_forms_a_formed_cluster_again()
    {
        var m = new MonitorHarness(ClusterConfig.Initial, leadership: Follower());
        m.Run(TimeSpan.FromSeconds(1), All);
        m.Node.OnConfigObserved(Config(3, 7, P, All));
        m.Node.OnLeadership(Active(m.Time, 2));

        m.Run(TimeSpan.FromSeconds(2), All);

        Assert.Empty(m.Env.Proposals);
        Assert.Equal((3L, 7L, P), (m.Node.Config.Epoch, m.Node.Config.Version, m.Node.Config.Primary));
    }

    /// <summary>
    /// Every process restarts on existing data. A restarted server never leads the epoch it recovered with (it comes
    /// back a backup), so the configured primary must be promoted into a new epoch; it must be that same server,
    /// whichever servers come back first, and not the one with the highest priority.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Restarting_everything_keeps_the_primary(bool primaryFirst)
    {
        var m = new MonitorHarness(Config(3, 7, B1, All));
        m.Time.Advance(MonitorHarness.Step);
        if (primaryFirst)
        {
            m.Beat(B1, ServerRole.Backup, epoch: 3);
        }

        m.Beat(P, ServerRole.Backup, epoch: 3);
        m.Beat(B2, ServerRole.Backup, epoch: 3);
        m.Node.Tick();
        if (!primaryFirst)
        {
            Assert.Empty(m.Env.Proposals);
            m.Beat(B1, ServerRole.Backup, epoch: 3);
        }

        var proposal = Assert.Single(m.Env.Proposals);
        Assert.Equal((B1, 4L), (proposal.Next.Primary, proposal.Next.Epoch));
    }

    // ------------------------------------------------------------------ losing leadership

    [Fact]
    public void Losing_leadership_calls_off_a_switchover_and_releases_the_primary()
    {
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 1));
        m.Run(TimeSpan.FromSeconds(1), All);
        m.AdminRequest(AdminCommand.Switchover, B1);
        Assert.Equal(FailoverPhase.Switchover, m.Node.Phase);

        m.Node.OnLeadership(Follower(term: 2));

        var response = Assert.Single(m.AdminResponses);
        Assert.False(response.Ok);
        Assert.Equal(OtherMonitor, response.ActiveMonitor);
        Assert.Equal(new StepDown(1, NodeAddress.None), m.Env.SentTo<StepDown>(P)[^1]);
        Assert.Equal(FailoverPhase.Stable, m.Node.Phase);
        Assert.Single(EventsOf(m, MonitorEventKind.BecameFollower));
        m.Node.CheckInvariants();
    }

    [Fact]
    public void Losing_leadership_drops_the_proposal_in_flight_and_grants_nothing_more()
    {
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 1));
        m.Run(TimeSpan.FromSeconds(1), All);
        m.Crash(P);
        var proposal = Assert.Single(m.Env.Proposals);

        m.Node.OnLeadership(Follower(term: 2));
        m.Node.CheckInvariants();
        m.Env.Clear();

        // The store's late answer: the write went through before leadership moved. Adopted, not acted on.
        m.Node.OnConfigStored(true, proposal.Next);
        m.Run(TimeSpan.FromSeconds(1), B1, B2);

        Assert.Equal(B1, m.Node.Config.Primary);
        Assert.Empty(m.Env.SentToServers<ConfigPush>());
        Assert.Empty(m.Env.Proposals);
        Assert.All(m.Env.SentToServers<HeartbeatAck>(), a => Assert.Equal((0, false, 2L), (a.LeaseMs, a.FromActive, a.MonitorTerm)));
    }

    [Fact]
    public void Newly_active_monitor_releases_a_primary_that_promised_an_earlier_monitor_to_step_down()
    {
        var m = WatchingFollower();
        var readiness = new StepDownResult(1, P, B1, true, 10, "ready");
        m.Node.Handle(readiness);
        Assert.Empty(m.Env.SentToServers<StepDown>());

        m.Node.OnLeadership(Active(m.Time, 2));
        m.Node.Handle(readiness);

        Assert.Equal(new StepDown(1, NodeAddress.None), Assert.Single(m.Env.SentTo<StepDown>(P)));
        Assert.Empty(m.Env.Proposals);
    }

    [Fact]
    public void A_stale_leadership_view_is_ignored()
    {
        var m = WatchingFollower();
        m.Node.OnLeadership(Active(m.Time, 3));
        m.Node.OnLeadership(Follower(term: 2));

        Assert.True(m.Node.IsActive);
        Assert.Equal(3, m.Node.Leadership.Term);
    }

    [Fact]
    public void A_stale_configuration_copy_grants_no_lease()
    {
        // A server reports epoch 2 while this monitor's copy says epoch 1: a newer primary was stored elsewhere.
        var m = WatchingFollower();
        m.Node.OnLeadership(Active(m.Time, 2));
        m.Beat(B1, ServerRole.Primary, epoch: 2);

        m.Beat(P);

        Assert.Equal(0, m.LastLeaseGrantedTo(P));
    }

    [Fact]
    public void A_primary_changed_by_an_earlier_term_gets_no_lease_while_the_old_primary_may_hold_one()
    {
        // This monitor renewed P; then a promotion of B1 that the previous active monitor wrote commits late.
        var time = new FakeTimeProvider();
        var m = new MonitorHarness(Config(1, 3, P, All), time: time, leadership: Active(time, 2));
        m.Run(TimeSpan.FromSeconds(1), All);
        m.Node.OnConfigObserved(Config(2, 4, B1, [B1, B2]));

        m.Beat(B1, ServerRole.Primary, epoch: 2);
        Assert.Equal(0, m.LastLeaseGrantedTo(B1));

        m.Run(TimeSpan.FromMilliseconds(500), B1, B2);
        Assert.Equal(500, m.LastLeaseGrantedTo(B1));
        Assert.Empty(m.Env.Proposals);
    }

    [Fact]
    public void Clock_drift_must_be_shorter_than_the_lease()
    {
        Assert.Throws<ArgumentException>(() => (MonitorHarness.DefaultOptions with { MaxClockDrift = TimeSpan.FromMilliseconds(-1) }).Validate());
        Assert.Throws<ArgumentException>(() => (MonitorHarness.DefaultOptions with { MaxClockDrift = TimeSpan.FromMilliseconds(500) }).Validate());
        (MonitorHarness.DefaultOptions with { MaxClockDrift = TimeSpan.Zero }).Validate();
    }

    /// <summary>A broken rule: grants whatever the leadership says.</summary>
    private sealed class GrantsAlways : IMonitorLeaseRule
    {
        public bool MayGrant(in LeaseGrantView view) => true;

        public long OthersMayBePromotedAt(in LeaseWaitView view) => ConfirmedLeadershipLeaseRule.Instance.OthersMayBePromotedAt(view);
    }
}

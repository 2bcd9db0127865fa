using Microsoft.Extensions.Time.Testing;

namespace Understudy.Core.Tests.Monitor;

/// <summary>The monitor's parts on their own, and its invariants through whole scenarios.</summary>
public sealed class MonitorPartsTests
{
    [Theory]
    [InlineData(FailureCause.NoPrimary, "no primary", true)]
    [InlineData(FailureCause.PrimaryRestarted, "primary restarted", true)]
    [InlineData(FailureCause.PrimaryCrashed, "primary crashed (connection reset, port refused)", true)]
    [InlineData(FailureCause.MissedHeartbeats, "primary missed heartbeats", false)]
    [InlineData(FailureCause.UnknownToMonitor, "primary unknown to this monitor", false)]
    public void Failure_causes_read_as_events_always_printed_them_and_only_proof_skips_the_lease(FailureCause cause, string text, bool provesDeath)
    {
        Assert.Equal(text, cause.Describe());
        Assert.Equal(provesDeath, cause.ProvesDeath());
    }

    [Fact]
    public void Lease_expiry_only_moves_later_until_a_new_term_restarts_it()
    {
        var time = new FakeTimeProvider();
        var lease = new LeaseKeeper(TimeSpan.FromMilliseconds(500), time, time.GetTimestamp());
        Assert.Equal(500, lease.DurationMs);
        Assert.Equal(500, lease.RemainingMs(time.GetTimestamp()), 3);

        time.Advance(TimeSpan.FromMilliseconds(100));
        lease.Grant(P, time.GetTimestamp(), long.MaxValue);
        Assert.Equal(500, lease.RemainingMs(time.GetTimestamp()), 3);

        // A grant dated earlier (an older heartbeat answered late) never shortens what was granted.
        lease.Grant(P, time.GetTimestamp() - (time.TimestampFrequency / 10), long.MaxValue);
        Assert.Equal(500, lease.RemainingMs(time.GetTimestamp()), 3);

        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.False(lease.MayStillRun(time.GetTimestamp()));
        Assert.Equal(0, lease.RemainingMs(time.GetTimestamp()));

        lease.StartTerm(B1, time.GetTimestamp());
        Assert.True(lease.MayStillRun(time.GetTimestamp()));
    }

    [Fact]
    public void A_lease_goes_only_to_the_primary_of_the_epoch_serving_as_primary_when_the_state_machine_lets_it()
    {
        var config = Config(2, 5, P, All);
        Heartbeat Beat(NodeAddress from, ServerRole role, long epoch) => new(from, 1, role, epoch, 5, 10, epoch, 10, 0, 1, true, 0, 0);

        Assert.True(LeaseKeeper.MayGrant(Beat(P, ServerRole.Primary, 2), config, failoverAllows: true));
        Assert.False(LeaseKeeper.MayGrant(Beat(P, ServerRole.Primary, 2), config, failoverAllows: false));
        Assert.False(LeaseKeeper.MayGrant(Beat(P, ServerRole.Primary, 1), config, failoverAllows: true));
        Assert.False(LeaseKeeper.MayGrant(Beat(P, ServerRole.Backup, 2), config, failoverAllows: true));
        Assert.False(LeaseKeeper.MayGrant(Beat(B1, ServerRole.Primary, 2), config, failoverAllows: true));
        Assert.False(LeaseKeeper.MayGrant(Beat(P, ServerRole.Primary, 0), Config(0, 0, P, All), failoverAllows: true));
    }

    [Fact]
    public void The_journal_keeps_the_newest_events_numbered_and_stamped_with_the_current_epoch()
    {
        var env = new RecordingMonitorEnvironment();
        var epoch = 3L;
        var journal = new MonitorJournal(2, env, new FakeTimeProvider(), () => epoch);
        journal.Record(MonitorEventKind.MemberUp, B1, "a");
        epoch = 4;
        journal.Record(MonitorEventKind.MemberDown, B1, "b");
        journal.Record(MonitorEventKind.MemberUp, B1, "c", 1.5);

        Assert.Equal([2L, 3L], journal.Events.Select(e => e.Sequence));
        Assert.Equal(4, journal.Events.Last().Epoch);
        Assert.Equal(1.5, journal.Events.Last().ElapsedMs);
        Assert.Equal(3, env.Events.Count);
    }

    [Fact]
    public void The_tracker_calls_a_server_down_only_when_its_port_refuses_and_names_the_cause()
    {
        var time = new FakeTimeProvider();
        var env = new RecordingMonitorEnvironment();
        var journal = new MonitorJournal(100, env, time, () => 1);
        var config = Config(1, 1, P, All);
        var tracker = new MemberTracker(MonitorHarness.DefaultOptions, time, env, journal, config.Members, time.GetTimestamp());
        Assert.Null(tracker.JudgePrimary(config));

        tracker.OnConnectionLost(P);
        Assert.Equal([new Probed(P)], env.Of<Probed>());
        Assert.False(tracker.OnProbeResult(P, ProbeOutcome.Accepted, time.GetTimestamp()));
        Assert.Null(tracker.JudgePrimary(config));

        // Still lost: the tick probes again after the reprobe interval.
        time.Advance(MonitorHarness.DefaultOptions.ReprobeInterval);
        tracker.Tick(time.GetTimestamp());
        Assert.Equal(2, env.Of<Probed>().Count());
        Assert.True(tracker.OnProbeResult(P, ProbeOutcome.Refused, time.GetTimestamp()));
        Assert.Equal(FailureCause.PrimaryCrashed, tracker.JudgePrimary(config));
        Assert.Equal(FailureCause.NoPrimary, tracker.JudgePrimary(config with { Primary = NodeAddress.None }));
        Assert.Equal(FailureCause.UnknownToMonitor, tracker.JudgePrimary(config with { Primary = new NodeAddress("127.0.0.1", 9999) }));
        tracker.CheckInvariants();
    }

    [Fact]
    public void Invariants_hold_through_failover_switchover_and_forced_promotion()
    {
        var m = MonitorHarness.Stable();
        m.Node.CheckInvariants();

        m.AdminRequest(AdminCommand.Switchover, B1);
        m.Node.CheckInvariants();
        Assert.Equal(FailoverPhase.Switchover, m.Node.Phase);
        m.Node.Handle(new StepDownResult(m.Node.Config.Epoch, P, B1, true, 10, string.Empty));
        Assert.Equal(FailoverPhase.Promoting, m.Node.Phase);
        m.Node.CheckInvariants();
        m.Store();
        m.Node.CheckInvariants();
        Assert.Equal(B1, m.Node.Config.Primary);

        m.Run(TimeSpan.FromMilliseconds(200), All);
        m.Crash(B1);
        m.Node.CheckInvariants();
        Assert.Equal(FailoverPhase.Promoting, m.Node.Phase);
        m.Store();
        m.Run(TimeSpan.FromMilliseconds(200), P, B2);
        m.Node.CheckInvariants();

        m.AdminRequest(AdminCommand.ForcePromote, B2);
        Assert.Equal(FailoverPhase.AwaitingLeaseExpiry, m.Node.Phase);
        m.Node.CheckInvariants();
        m.Run(TimeSpan.FromSeconds(1), P, B2);
        Assert.Equal(FailoverPhase.Promoting, m.Node.Phase);
        m.Node.CheckInvariants();
        m.Store();
        m.Node.CheckInvariants();
        Assert.Equal(B2, m.Node.Config.Primary);
    }

    [Fact]
    public void A_stored_configuration_whose_primary_is_out_of_the_in_sync_set_breaks_an_invariant()
    {
        // Debug builds already throw from the constructor, release builds when asked.
        Assert.Throws<InvariantViolationException>(() =>
            new MonitorNode(MonitorHarness.DefaultOptions, Config(1, 1, P, [B1, B2]), new RecordingMonitorEnvironment(), new FakeTimeProvider(), 1).CheckInvariants());
    }
}

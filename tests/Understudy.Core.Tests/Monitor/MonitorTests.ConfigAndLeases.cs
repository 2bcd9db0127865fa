using static Understudy.Core.Tests.Monitor.MonitorHarness;

namespace Understudy.Core.Tests.Monitor;

// What the monitor stores before announcing, the in-sync changes it approves and the leases it grants: split from
// MonitorTests.cs by concern, one partial class.
public partial class MonitorTests
{
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
}

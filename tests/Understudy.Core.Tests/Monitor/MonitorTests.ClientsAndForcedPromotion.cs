using static Understudy.Core.Tests.Monitor.MonitorHarness;

namespace Understudy.Core.Tests.Monitor;

// Telling clients of a new primary, and promotions an operator forces: split from MonitorTests.cs by concern, one
// partial class.
public partial class MonitorTests
{
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

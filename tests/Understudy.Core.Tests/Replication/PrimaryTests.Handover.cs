using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

// Handing the primary role over to a backup: split from PrimaryTests.cs by concern, one partial class.
public partial class PrimaryTests
{
    [Fact]
    public void Primary_hands_over_only_when_target_holds_the_whole_log()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B2, 2);

        p.Deliver(new StepDown(1, B1));
        Assert.Single(p.Env.EventsOf(ServerEventKind.HandoverStarted));
        Assert.Empty(p.Env.ToMonitor<StepDownResult>());

        // Writes pause during the handover.
        p.Write(C2, 42, 2, "b");
        Assert.Equal(ResponseStatus.Unavailable, Single(p.Env.RepliesTo(C2)).Status);
        Assert.Equal(2, p.Node.LastIndex);

        // B1 has 1 but not 2: not yet.
        p.AckFrom(B1, 1);
        p.Tick();
        Assert.Empty(p.Env.ToMonitor<StepDownResult>());

        p.AckFrom(B1, 2);
        var result = Assert.Single(p.Env.ToMonitor<StepDownResult>());
        Assert.Equal(new StepDownResult(1, P, B1, true, 2, string.Empty), result);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);

        // Having said ready, it never serves in this epoch again, whatever leases come.
        Assert.False(p.Node.HasLease);
        p.HeartbeatAck();
        Assert.False(p.Node.HasLease);
        p.Read(C3, 43, 1);
        Assert.Equal(ResponseStatus.Unavailable, Single(p.Env.RepliesTo(C3)).Status);
    }

    [Fact]
    public void Primary_abandons_a_handover_when_the_target_does_not_catch_up_in_time()
    {
        var p = StartPrimary(options: new ServerOptions { SwitchoverTimeout = TimeSpan.FromMilliseconds(200) });
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B2, 2);
        p.Deliver(new StepDown(1, B1));

        p.Advance(TimeSpan.FromMilliseconds(250), renewLease: true);

        var result = Assert.Single(p.Env.ToMonitor<StepDownResult>());
        Assert.False(result.Ready);
        Assert.Single(p.Env.EventsOf(ServerEventKind.HandoverAbandoned));
        p.Write(C2, 42, 2, "b");
        Assert.Equal(3, p.Node.LastIndex); // serving again
    }

    [Theory]
    [InlineData(2, 8089)] // wrong epoch
    [InlineData(1, 8090)] // itself
    [InlineData(1, 9999)] // not a member
    public void Primary_refuses_a_handover_it_cannot_make(long epoch, int targetPort)
    {
        var p = StartPrimary();

        p.Deliver(new StepDown(epoch, new NodeAddress("127.0.0.1", targetPort)));

        var result = Assert.Single(p.Env.ToMonitor<StepDownResult>());
        Assert.False(result.Ready);
        Assert.Empty(p.Env.EventsOf(ServerEventKind.HandoverStarted));
        p.Write(C1, 42, 1, "a");
        Assert.Equal(2, p.Node.LastIndex);
    }
}

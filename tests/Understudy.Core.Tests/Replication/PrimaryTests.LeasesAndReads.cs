using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

// The primary's lease and when it may serve reads: split from PrimaryTests.cs by concern, one partial class.
public partial class PrimaryTests
{
    [Fact]
    public void Primary_stops_serving_reads_and_writes_when_its_lease_lapses()
    {
        // StartPrimary's lease: 500 ms from the push, of which the primary relies on 90%.
        var p = StartPrimary();

        p.Time.Advance(TimeSpan.FromMilliseconds(440));
        p.Tick();
        p.Write(C1, 42, 1, "a");
        Assert.Equal(2, p.Node.LastIndex);
        p.Read(C2, 43, 1);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C2)).Status);

        p.Time.Advance(TimeSpan.FromMilliseconds(20));
        p.Tick();
        Assert.False(p.Node.HasLease);
        Assert.Single(p.Env.EventsOf(ServerEventKind.LeaseLapsed));
        p.Write(C3, 42, 2, "b");
        p.Read(C3, 43, 2);
        Assert.All(p.Env.RepliesTo(C3), r => Assert.Equal(ResponseStatus.Unavailable, r.Status));
        Assert.Equal(2, p.Env.RepliesTo(C3).Count);
        Assert.Equal(2, p.Node.LastIndex);

        // A renewal dated from a fresh heartbeat brings it back.
        p.HeartbeatAck();
        Assert.True(p.Node.IsServing);
    }

    [Fact]
    public void Primary_dates_its_lease_from_when_it_sent_the_heartbeat_not_when_the_answer_came()
    {
        var p = StartPrimary();
        var sentAt = p.Now;

        p.Time.Advance(TimeSpan.FromMilliseconds(460));
        p.HeartbeatAck(echo: sentAt);

        Assert.False(p.Node.HasLease);
        p.Write(C1, 42, 1, "a");
        Assert.Equal(ResponseStatus.Unavailable, Single(p.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void Primary_takes_a_lease_only_for_its_own_epoch()
    {
        var p = StartPrimary();
        p.Time.Advance(TimeSpan.FromMilliseconds(460));
        p.Tick();

        // An answer carrying a lease but a configuration naming it primary of an older epoch grants nothing.
        p.HeartbeatAck(Config(0, 5, P, All));
        p.HeartbeatAck(leaseMs: 0);

        Assert.False(p.Node.HasLease);
    }

    [Fact]
    public void Primary_serves_reads_only_after_its_epoch_start_entry_commits()
    {
        var p = new ServerHarness(P);
        p.Push(Config(1, 5, P, All));
        Assert.True(p.Node.HasLease);

        p.Read(C1, 42, 1);
        p.SyncDisk();
        p.AckFrom(B1, 1);
        p.Read(C1, 42, 2);
        Assert.All(p.Env.RepliesTo(C1), r => Assert.Equal(ResponseStatus.Unavailable, r.Status));

        p.AckFrom(B2, 1);
        p.Read(C2, 42, 3);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C2)).Status);
    }

    [Fact]
    public void New_primary_serves_reads_only_once_entries_from_earlier_epochs_are_committed_too()
    {
        // Entries 1..2 of epoch 1 came from the old primary; nobody told this server they were committed.
        var p = new ServerHarness(P, recoveredEpoch: 1, log: Log(1, 1));
        p.Push(Config(2, 5, P, [P, B1]));
        Assert.Equal(3, p.Node.LastIndex);
        p.SyncDisk();

        p.AckFrom(B1, 2);
        p.Read(C1, 42, 1);
        Assert.Equal(ResponseStatus.Unavailable, Single(p.Env.RepliesTo(C1)).Status);

        p.AckFrom(B1, 3);
        p.Read(C2, 42, 2);
        var reply = Single(p.Env.RepliesTo(C2));
        Assert.Equal(ResponseStatus.Ok, reply.Status);
        Assert.Equal(2, Seq(reply)); // the count includes the two earlier messages
    }
}

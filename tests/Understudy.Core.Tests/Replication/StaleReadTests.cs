namespace Understudy.Core.Tests.Replication;

/// <summary>
/// Bounded-staleness reads (<see cref="RequestKind.StaleRead"/>): a backup answers only when it heard from its primary
/// within the lag allowed and has applied all the primary said was committed; everything else is refused so the
/// client asks the primary, which answers linearizably. A plain read is never answered by a backup.
/// </summary>
public class StaleReadTests
{
    private static readonly ClientRef C1 = new(1);
    private static readonly TimeSpan Lag = TimeSpan.FromMilliseconds(200);

    [Fact]
    public void A_backup_that_just_heard_from_its_primary_and_applied_its_commits_answers_a_stale_read()
    {
        var b = CaughtUpBackup();

        b.Request(C1, StaleCount(7, Lag));

        var reply = ServerHarness.Single(b.Env.RepliesTo(C1));
        Assert.Equal(ResponseStatus.Ok, reply.Status);
        Assert.Equal(3, ServerHarness.Seq(reply));
    }

    [Fact]
    public void A_backup_refuses_a_stale_read_once_its_last_frame_is_older_than_the_lag_and_names_the_primary()
    {
        var b = CaughtUpBackup();
        b.Time.Advance(Lag + TimeSpan.FromMilliseconds(1));

        b.Request(C1, StaleCount(7, Lag));

        var reply = ServerHarness.Single(b.Env.RepliesTo(C1));
        Assert.Equal(ResponseStatus.NotPrimary, reply.Status);
        Assert.Equal(P, reply.Primary);
    }

    [Fact]
    public void A_backup_refuses_a_stale_read_while_it_has_not_applied_what_the_primary_said_was_committed()
    {
        // Entries 1..3 held; the primary says 5 is committed but this backup has verified only through 3.
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1));
        b.Deliver(ServerHarness.Frame(1, P, 2, 1, 5, Entry(3, 1)));
        Assert.Equal(3, b.Node.CommitIndex);

        b.Request(C1, StaleCount(7, TimeSpan.FromSeconds(10)));

        Assert.Equal(ResponseStatus.NotPrimary, ServerHarness.Single(b.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void A_backup_that_never_heard_from_a_primary_refuses_a_stale_read()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1));

        b.Request(C1, StaleCount(7, TimeSpan.FromHours(1)));

        Assert.Equal(ResponseStatus.NotPrimary, ServerHarness.Single(b.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void A_backup_never_answers_a_linearizable_read_however_fresh_it_is()
    {
        var b = CaughtUpBackup();

        b.Read(C1, 42, 7);

        Assert.Equal(ResponseStatus.NotPrimary, ServerHarness.Single(b.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void The_primary_answers_a_stale_read_as_a_linearizable_one_and_rejects_a_malformed_one()
    {
        var p = ServerHarness.StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);
        p.AckFrom(B2, 2);
        p.Env.Clear();

        p.Request(C1, StaleCount(7, Lag));
        p.Request(C1, new ClientRequest(42, 8, 8, RequestKind.StaleRead, new byte[] { 1, 2 }));

        var replies = p.Env.RepliesTo(C1);
        Assert.Equal(2, replies.Count);
        Assert.Equal(ResponseStatus.Ok, replies[0].Status);
        Assert.Equal(1, ServerHarness.Seq(replies[0]));
        Assert.Equal(ResponseStatus.Rejected, replies[1].Status);
    }

    [Fact]
    public void A_primary_without_a_lease_refuses_a_stale_read_too()
    {
        var p = ServerHarness.StartPrimary();
        p.Advance(TimeSpan.FromMilliseconds(ServerHarness.LeaseMs * 2));
        p.Env.Clear();

        p.Request(C1, StaleCount(7, Lag));

        Assert.Equal(ResponseStatus.Unavailable, ServerHarness.Single(p.Env.RepliesTo(C1)).Status);
    }

    /// <summary>A backup of epoch 1 holding and having applied entries 1..3 (three messages), fresh from a frame.</summary>
    private static ServerHarness CaughtUpBackup()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1));
        b.Deliver(ServerHarness.Frame(1, P, 2, 1, 3, Entry(3, 1)));
        Assert.Equal(3, b.Node.CommitIndex);
        b.Env.Clear();
        return b;
    }

    private static ClientRequest StaleCount(long seq, TimeSpan lag) =>
        new(42, seq, seq, RequestKind.StaleRead, StaleReadPayload.Encode(lag, MessageStoreCommands.Count()));
}

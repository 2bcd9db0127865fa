using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>The primary's rules: when a write is acknowledged, when it serves at all, and when it steps aside.</summary>
public partial class PrimaryTests
{
    private static readonly ClientRef C1 = new(1);
    private static readonly ClientRef C2 = new(2);
    private static readonly ClientRef C3 = new(3);

    [Fact]
    public void Primary_acknowledges_client_only_after_every_in_sync_member_has_the_entry_durably()
    {
        var p = StartPrimary();

        p.Write(C1, 42, 1, "a");
        Assert.Equal(2, p.Node.LastIndex);
        p.SyncDisk();
        Assert.Empty(p.Env.Replies);

        p.AckFrom(B1, 2);
        Assert.Empty(p.Env.Replies);

        // B2 has the entry but not on disk yet: that does not count.
        p.AckFrom(B2, 1, verified: 2);
        Assert.Empty(p.Env.Replies);

        p.AckFrom(B2, 2);
        var reply = Single(p.Env.RepliesTo(C1));
        Assert.Equal(ResponseStatus.Ok, reply.Status);
        Assert.Equal(1, Seq(reply));
        Assert.Equal(1, reply.Epoch);
        Assert.Equal(P, reply.Primary);
    }

    [Fact]
    public void Primary_counts_its_own_fsync_before_committing()
    {
        var p = StartPrimary();

        p.Write(C1, 42, 1, "a");
        p.AckFrom(B1, 2);
        p.AckFrom(B2, 2);
        Assert.Empty(p.Env.Replies);
        Assert.Equal(1, p.Node.CommitIndex);

        p.SyncDisk();
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);
        Assert.Equal(2, p.Node.CommitIndex);
    }

    [Fact]
    public void Primary_does_not_wait_for_a_backup_outside_the_in_sync_set()
    {
        var p = StartPrimary(inSync: [P, B1]);

        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);

        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void Primary_does_not_blame_its_backups_for_a_stall_of_its_own()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.Tick();

        // The primary itself is not scheduled for 400 ms (its lease renewed meanwhile): the backups' answers wait unread.
        p.Time.Advance(TimeSpan.FromMilliseconds(400));
        p.HeartbeatAck();
        p.Tick();
        Assert.Empty(p.Env.ToMonitor<InSyncChange>());

        // The backups answer once it runs again; had B2 stayed silent past the lag timeout, it would be asked out.
        p.AckFrom(B1, 2);
        p.Advance(TimeSpan.FromMilliseconds(400), renewLease: true);
        var request = Assert.Single(p.Env.ToMonitor<InSyncChange>());
        Assert.Equal((InSyncOp.Remove, B2), (request.Op, request.Member));
    }

    [Fact]
    public void Primary_waits_for_a_lagging_in_sync_backup_until_the_monitor_removes_it()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);

        // B2 goes quiet. The primary asks the monitor to remove it, and keeps waiting.
        p.Advance(TimeSpan.FromMilliseconds(400), renewLease: true);
        var request = Assert.Single(p.Env.ToMonitor<InSyncChange>());
        Assert.Equal(new InSyncChange(request.RequestId, P, 1, 5, InSyncOp.Remove, B2), request);
        Assert.Equal(1, p.Node.CommitIndex);
        Assert.Empty(p.Env.Replies);

        // Refused (the monitor was busy): still waiting, even much later.
        p.Deliver(new InSyncChangeResult(request.RequestId, false, Config(1, 5, P, All), "busy"));
        p.Advance(TimeSpan.FromSeconds(2), renewLease: true);
        Assert.Empty(p.Env.Replies);
        Assert.Contains(B2, p.Node.Config.InSync);
        Assert.True(p.Env.ToMonitor<InSyncChange>().Count >= 2, "the primary keeps asking");

        // The monitor's new configuration without B2: now the write commits.
        var last = p.Env.ToMonitor<InSyncChange>()[^1];
        p.Deliver(new InSyncChangeResult(last.RequestId, true, Config(1, 6, P, [P, B1]), string.Empty));
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void Primary_never_removes_a_backup_from_the_in_sync_set_on_its_own()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);

        p.Input(n => n.OnPeerConnectionLost(B2));
        p.Advance(TimeSpan.FromSeconds(1), renewLease: true);

        Assert.Equal(All.Order(), p.Node.Config.InSync);
        Assert.Empty(p.Env.Replies);
        Assert.All(p.Env.ToMonitor<InSyncChange>(), r => Assert.Equal((InSyncOp.Remove, B2), (r.Op, r.Member)));
    }

    [Fact]
    public void Primary_counts_a_backup_it_asked_to_add_from_the_moment_it_asks()
    {
        var p = StartPrimary(inSync: [P, B1]);

        // B2 catches up; on the next tick the primary asks the monitor to add it back.
        p.AckFrom(B2, 1);
        p.Tick();
        var request = Assert.Single(p.Env.ToMonitor<InSyncChange>());
        Assert.Equal((InSyncOp.Add, B2, 5L), (request.Op, request.Member, request.ExpectedVersion));

        // No answer yet: a new write now also needs B2.
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);
        Assert.Empty(p.Env.Replies);

        p.AckFrom(B2, 2);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void Primary_keeps_counting_a_pending_add_while_the_monitor_has_not_decided()
    {
        var p = StartPrimary(inSync: [P, B1]);
        p.AckFrom(B2, 1);
        p.Tick();
        var request = Assert.Single(p.Env.ToMonitor<InSyncChange>());

        // Refused at the same version (busy): the monitor may still add it, so it still counts.
        p.Deliver(new InSyncChangeResult(request.RequestId, false, Config(1, 5, P, [P, B1]), "busy"));
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);
        Assert.Empty(p.Env.Replies);

        // A newer configuration without B2: the monitor decided against it; B2 no longer counts.
        p.HeartbeatAck(Config(1, 6, P, [P, B1]));
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);
    }

    [Fact]
    public void Primary_asks_to_add_a_backup_only_once_it_holds_every_committed_entry()
    {
        var p = StartPrimary(inSync: [P, B1]);

        // B2 answers, but holds nothing of this epoch yet.
        p.AckFrom(B2, 0);
        p.Tick();
        Assert.Empty(p.Env.ToMonitor<InSyncChange>());

        p.AckFrom(B2, 1);
        p.Tick();
        var request = Assert.Single(p.Env.ToMonitor<InSyncChange>());
        Assert.Equal((InSyncOp.Add, B2), (request.Op, request.Member));
    }

    [Fact]
    public void Primary_resends_frames_that_go_unanswered()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        Assert.Single(p.Env.SentTo<Replicate>(B1)); // lost on the way

        p.Advance(TimeSpan.FromMilliseconds(150), renewLease: true);

        Assert.Contains(p.Env.SentTo<Replicate>(B1).Skip(1), f => f.PrevIndex == 1 && f.Entries.Length == 1);
    }

    [Fact]
    public void Primary_brings_a_diverged_backup_to_its_own_log_using_the_conflict_hints()
    {
        // Epoch 3's primary wrote 3..6 and lost them all; this primary's log went 1 1 2 2 4 and now leads epoch 5.
        var primary = new ServerHarness(P, recoveredEpoch: 4, log: Log(1, 1, 2, 2, 4));
        var backup = new ServerHarness(B1, recoveredEpoch: 3, log: Log(1, 1, 3, 3, 3, 3));
        primary.Push(Config(5, 9, P, [P, B1]));

        Network.Pump(primary, backup);
        primary.Tick();
        Network.Pump(primary, backup);

        Assert.Equal([1L, 1L, 2L, 2L, 4L, 5L], backup.Node.Log.Range(1, 99).Select(e => e.Epoch));
        Assert.Equal(6, primary.Node.CommitIndex);
        Assert.Equal(6, backup.Node.CommitIndex);
        Assert.Equal(primary.Node.State.SnapshotBytes(), backup.Node.State.SnapshotBytes());
        Assert.Empty(backup.Env.EventsOf(ServerEventKind.SafetyViolation));
    }

    [Fact]
    public void Primary_refuses_writes_below_min_in_sync()
    {
        var options = new ServerOptions { MinInSync = 2 };
        var p = StartPrimary(inSync: [P], options: options, requireServing: false);

        p.Write(C1, 42, 1, "a");

        var reply = Single(p.Env.RepliesTo(C1));
        Assert.Equal(ResponseStatus.Unavailable, reply.Status);
        Assert.Empty(p.Env.Appended);

        // Once B1 is back in the in-sync set, writes are taken and need B1.
        p.AckFrom(B1, 1);
        p.HeartbeatAck(Config(1, 6, P, [P, B1]));
        p.Write(C2, 42, 1, "a");
        p.SyncDisk();
        Assert.Empty(p.Env.RepliesTo(C2));
        p.AckFrom(B1, 2);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C2)).Status);
    }

    [Fact]
    public void Primary_does_not_commit_while_the_in_sync_set_is_below_min_in_sync()
    {
        var options = new ServerOptions { MinInSync = 2 };
        var p = StartPrimary(inSync: [P, B1], options: options);
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();

        // The monitor removed B1 (it lagged): the primary alone may not acknowledge.
        p.HeartbeatAck(Config(1, 6, P, [P]));
        p.Advance(TimeSpan.FromSeconds(1), renewLease: true);

        Assert.Empty(p.Env.Replies);
        Assert.Equal(1, p.Node.CommitIndex);
    }
}

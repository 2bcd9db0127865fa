using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Core.Tests.Fakes;
using Understudy.Protocol;
using static Understudy.Core.Tests.Fakes.Cluster;
using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>The primary's rules: when a write is acknowledged, when it serves at all, and when it steps aside.</summary>
public class PrimaryTests
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

    [Fact]
    public void Primary_returns_first_result_for_a_retried_request()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");

        // Retried while in flight (another connection): not logged again.
        p.Write(C2, 42, 1, "a");
        Assert.Single(p.Env.Appended);

        p.SyncDisk();
        p.AckFrom(B1, 2);
        p.AckFrom(B2, 2);
        var first = Single(p.Env.RepliesTo(C1));
        var second = Single(p.Env.RepliesTo(C2));
        Assert.Equal(ResponseStatus.Ok, first.Status);
        Assert.Equal(ResponseStatus.Ok, second.Status);
        Assert.Equal(1, Seq(first));
        Assert.Equal(1, Seq(second));

        // Retried after it committed: answered at once with the first result, still not logged again.
        p.Write(C3, 42, 1, "a");
        var third = Single(p.Env.RepliesTo(C3));
        Assert.Equal(ResponseStatus.Ok, third.Status);
        Assert.Equal(1, Seq(third));
        Assert.Single(p.Env.Appended);
        Assert.Equal(1, p.Machine.Count);
    }

    [Fact]
    public void New_primary_answers_a_retry_of_an_uncommitted_earlier_write_without_logging_it_again()
    {
        // Entry 1 (client 1, seq 1) was written by the old primary and never confirmed committed here.
        var p = new ServerHarness(P, recoveredEpoch: 1, log: Log(1));
        p.Push(Config(2, 5, P, [P, B1]));

        p.Write(C1, 1, 1, "m1");
        Assert.Equal([2L], p.Env.Appended.Select(e => e.Index)); // only the epoch-start entry

        p.SyncDisk();
        p.AckFrom(B1, 2);
        var reply = Single(p.Env.RepliesTo(C1));
        Assert.Equal(ResponseStatus.Ok, reply.Status);
        Assert.Equal(1, Seq(reply));
        Assert.Equal(1, p.Machine.Count);
    }

    [Fact]
    public void Primary_refuses_a_retry_whose_result_the_client_said_it_no_longer_needs()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.Write(C1, 42, 2, "b", firstIncomplete: 2); // the client has its answer to 1
        p.SyncDisk();
        p.AckFrom(B1, 3);
        p.AckFrom(B2, 3);

        p.Write(C2, 42, 1, "a");

        Assert.Equal(ResponseStatus.Rejected, Single(p.Env.RepliesTo(C2)).Status);
        Assert.Equal(3, p.Node.LastIndex);
        Assert.Equal(2, p.Machine.Count);
    }

    public static TheoryData<string> NewerEpochSignals() => ["heartbeat-ack", "config-push", "replicate-ack", "replicate"];

    [Theory]
    [MemberData(nameof(NewerEpochSignals))]
    public void Primary_steps_down_on_a_newer_epoch_and_tells_waiting_clients_where_to_go(string signal)
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.Write(C2, 42, 1, "a");
        var newer = Config(2, 6, B1, [B1, B2]);

        switch (signal)
        {
            case "heartbeat-ack": p.HeartbeatAck(newer); break;
            case "config-push": p.Push(newer, withLease: false); break;
            case "replicate-ack": p.Deliver(new ReplicateAck(2, B1, BackupIncarnation, false, 0, 0, 1, 1, 0, 0, 0)); break;
            case "replicate": p.Deliver(Frame(2, B1, 1, 1, 1, Entry(2, 2))); break;
        }

        Assert.Equal(ServerRole.Backup, p.Node.Role);
        Assert.Equal(2, p.Node.Epoch);
        Assert.Contains(new SavedEpoch(2), p.Env.Calls);
        Assert.Single(p.Env.EventsOf(ServerEventKind.SteppedDown));
        foreach (var client in new[] { C1, C2 })
        {
            var reply = Single(p.Env.RepliesTo(client));
            Assert.Equal(ResponseStatus.NotPrimary, reply.Status);
            Assert.Equal(2, reply.Epoch);
            if (signal != "replicate-ack")
            {
                Assert.Equal(B1, reply.Primary); // the backup's answer does not say who replaced this primary
            }
        }

        // And it takes no more writes.
        p.Write(C3, 42, 2, "b");
        Assert.Equal(ResponseStatus.NotPrimary, Single(p.Env.RepliesTo(C3)).Status);
        Assert.False(p.Node.IsServing);
    }

    [Fact]
    public void Primary_refuses_a_frame_from_another_primary_of_its_own_epoch()
    {
        var p = StartPrimary();

        p.Deliver(Frame(1, B1, 1, 1, 1, Entry(2, 1)));

        Assert.Equal(ServerRole.Primary, p.Node.Role);
        Assert.Empty(p.Env.Appended);
        Assert.Single(p.Env.EventsOf(ServerEventKind.SafetyViolation));
    }

    [Fact]
    public void Restarted_server_never_leads_the_epoch_it_recovered_with()
    {
        var s = new ServerHarness(P, recoveredEpoch: 3, log: Log(1, 3));

        s.Push(Config(3, 9, P, All));

        Assert.Equal(ServerRole.Backup, s.Node.Role);
        Assert.Empty(s.Env.EventsOf(ServerEventKind.BecamePrimary));
        Assert.Empty(s.Env.Appended);
        s.Write(C1, 42, 1, "a");
        Assert.Equal(ResponseStatus.NotPrimary, Single(s.Env.RepliesTo(C1)).Status);

        // The next epoch it may lead.
        s.Push(Config(4, 10, P, All));
        Assert.Equal(ServerRole.Primary, s.Node.Role);
        Assert.Equal(4, s.Node.Epoch);
    }

    [Fact]
    public void Restarted_server_takes_its_recovered_epoch_from_its_log_when_that_is_newer()
    {
        // The saved epoch says 2 but the log holds an entry of epoch 3 (the epoch file lagged).
        var s = new ServerHarness(P, recoveredEpoch: 2, log: Log(1, 3));

        s.Push(Config(3, 9, P, All));

        Assert.Equal(ServerRole.Backup, s.Node.Role);
        Assert.Equal(3, s.Node.Epoch);
    }

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

    [Fact]
    public void Primary_batches_many_client_writes_from_one_flush_into_one_frame_per_backup()
    {
        var p = StartPrimary();

        p.Batch(n =>
        {
            for (var i = 1; i <= 10; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });

        foreach (var backup in new[] { B1, B2 })
        {
            var frame = Assert.Single(p.Env.SentTo<Replicate>(backup));
            Assert.Equal(10, frame.Entries.Length);
            Assert.Equal(1, frame.PrevIndex);
        }

        Assert.Equal(11, Assert.Single(p.Env.Syncs).ThroughIndex);
    }

    [Fact]
    public void Primary_sends_a_backup_more_than_one_batch_behind_catch_up_sized_frames()
    {
        var p = StartPrimary(inSync: [P, B1], options: new ServerOptions { MaxBatchEntries = 4, CatchUpBatchEntries = 16 });

        p.Batch(n =>
        {
            for (var i = 1; i <= 30; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });

        // 30 behind: frames of up to 16 entries, not 4.
        Assert.Equal([16, 14], p.Env.SentTo<Replicate>(B1).Select(f => f.Entries.Length));
        p.Forget();

        // Within one batch of the end: ordinary frames.
        p.AckFrom(B1, 31);
        p.Batch(n =>
        {
            for (var i = 31; i <= 33; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });
        Assert.Equal([3], p.Env.SentTo<Replicate>(B1).Select(f => f.Entries.Length));
    }

    [Fact]
    public void Primary_pipelines_again_once_a_backup_has_acknowledged_everything_it_was_sent()
    {
        var p = StartPrimary(inSync: [P, B1]);
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: [.. p.Node.Log.Range(1, 1)]);

        // Eight writes, each flushed on its own: eight frames reach the backup before its disk syncs.
        for (var i = 1; i <= 8; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        foreach (var sent in p.TakeOutbox().Where(s => s.To == B1))
        {
            b.Deliver((Replicate)sent.Message);
        }

        // One sync covers all eight; the backup answers once, for everything.
        b.SyncDisk();
        p.Deliver(Assert.Single(b.Env.SentTo<ReplicateAck>(P)));
        p.SyncDisk();
        Assert.Equal(9, p.Node.CommitIndex);
        Assert.Equal(9, p.Node.Followers.Single(f => f.Address == B1).MatchIndex);

        // Nothing is outstanding with B1, so eight more writes flushed one by one may all be sent at once.
        p.TakeOutbox();
        for (var i = 9; i <= 16; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        Assert.Equal(8, p.TakeOutbox().Count(s => s.To == B1 && s.Message is Replicate));
    }
}

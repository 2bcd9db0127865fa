using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>The backup's rules: which frames it takes, what it truncates, what it acknowledges and applies.</summary>
public class BackupTests
{
    [Fact]
    public void Backup_rejects_frame_from_older_epoch()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 2, log: Log(1, 2));

        b.Deliver(Frame(1, P, 2, 2, 2, Entry(3, 1)));

        Assert.Empty(b.Env.Appended);
        Assert.Empty(b.Env.Of<TruncatedLog>());
        Assert.Equal(2, b.Node.LastIndex);
        var nack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.False(nack.Success);
        Assert.Equal(2, nack.Epoch); // the stale primary learns it has been replaced
        Assert.Equal(0, nack.MatchIndex);
        Assert.Single(b.Env.EventsOf(ServerEventKind.StaleFrameRejected));
        Assert.Equal(2, b.Node.Epoch);
    }

    [Fact]
    public void Stale_primary_steps_down_when_a_backup_answers_with_a_newer_epoch()
    {
        var primary = StartPrimary();
        primary.Write(new ClientRef(1), 42, 1, "a");
        var frame = Assert.Single(primary.Env.SentTo<Replicate>(B1));

        var backup = new ServerHarness(B1, recoveredEpoch: 2, log: Log(1));
        backup.Deliver(frame);
        primary.Deliver(Assert.Single(backup.Env.SentTo<ReplicateAck>(P)));

        Assert.Equal(ServerRole.Backup, primary.Node.Role);
        Assert.Equal(2, primary.Node.Epoch);
        Assert.Contains(new SavedEpoch(2), primary.Env.Calls);
        var reply = Single(primary.Env.RepliesTo(new ClientRef(1)));
        Assert.Equal(ResponseStatus.NotPrimary, reply.Status);
        Assert.Equal(2, reply.Epoch);
    }

    [Fact]
    public void Backup_rejects_frame_whose_previous_entry_does_not_match()
    {
        // Log: 1@1 2@1 3@2 4@2. The frame says entry 4 is of epoch 3.
        var b = new ServerHarness(B1, recoveredEpoch: 2, log: Log(1, 1, 2, 2));

        b.Deliver(Frame(3, P, 4, 3, 0, Entry(5, 3)));

        Assert.Empty(b.Env.Appended);
        Assert.Equal(4, b.Node.LastIndex);
        var nack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.False(nack.Success);
        Assert.Equal(4, nack.PrevIndex);
        Assert.Equal(2, nack.ConflictEpoch);  // the epoch of its own entry at prevIndex
        Assert.Equal(3, nack.ConflictIndex);  // the first index it holds of that epoch
        Assert.Equal(4, nack.LogEnd);
        Assert.Single(b.Env.EventsOf(ServerEventKind.LogMismatch));
    }

    [Fact]
    public void Backup_rejects_frame_whose_previous_entry_it_does_not_have_and_says_where_its_log_ends()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1));

        b.Deliver(Frame(1, P, 5, 1, 0, Entry(6, 1)));

        Assert.Empty(b.Env.Appended);
        var nack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.False(nack.Success);
        Assert.Equal(0, nack.ConflictEpoch);
        Assert.Equal(0, nack.ConflictIndex);
        Assert.Equal(2, nack.LogEnd);
    }

    [Fact]
    public void Backup_truncates_uncommitted_suffix_that_differs_from_new_primary()
    {
        // The backup holds 2@1 and 3@1 that the old primary never committed; the new primary of epoch 2 wrote 2@2.
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1, 1));

        b.Deliver(Frame(2, P, 1, 1, 1, Entry(2, 2, "new")));

        var truncateAt = b.Env.IndexOf(c => c is TruncatedLog { FromIndex: 2 });
        var appendAt = b.Env.IndexOf(c => c is AppendedLog);
        Assert.True(truncateAt >= 0, "the differing suffix must be truncated");
        Assert.True(truncateAt < appendAt, "truncation must reach the disk before the new entry");
        Assert.Equal(2, b.Node.LastIndex);
        Assert.Equal(2, b.Node.Log[2].Epoch);
        Assert.Equal([1L, 2L], b.Node.Log.Range(1, 2).Select(e => e.Epoch));
        Assert.Single(b.Env.EventsOf(ServerEventKind.Truncated));
        Assert.Empty(b.Env.EventsOf(ServerEventKind.SafetyViolation));
    }

    [Fact]
    public void Backup_keeps_entries_that_match_the_new_primary_and_appends_only_what_is_new()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1, 1));

        b.Deliver(Frame(2, P, 0, 0, 0, Entry(1, 1), Entry(2, 1), Entry(3, 1), Entry(4, 2)));

        Assert.Empty(b.Env.Of<TruncatedLog>());
        Assert.Equal([4L], b.Env.Appended.Select(e => e.Index));
        Assert.Equal(4, b.Node.LastIndex);
    }

    [Fact]
    public void Backup_truncates_with_real_frames_from_a_new_primary_and_ends_with_its_log()
    {
        // The old primary's backup got 3@1 and 4@1, uncommitted; the new primary (epoch 2) never saw them.
        var primary = new ServerHarness(P, recoveredEpoch: 1, log: Log(1, 1));
        var backup = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1, 1, 1));
        primary.Push(Config(2, 5, P, [P, B1]));

        Network.Pump(primary, backup);
        primary.Tick(); // the commit index reaches backups with the next frame
        Network.Pump(primary, backup);

        Assert.Equal([1L, 1L, 2L], backup.Node.Log.Range(1, 10).Select(e => e.Epoch));
        Assert.Equal(3, primary.Node.CommitIndex);
        Assert.Equal(3, backup.Node.CommitIndex);
        Assert.Single(backup.Env.EventsOf(ServerEventKind.Truncated));
        Assert.Equal(primary.Node.State.SnapshotBytes(), backup.Node.State.SnapshotBytes());
    }

    [Fact]
    public void Backup_never_truncates_a_committed_entry()
    {
        var b = new ServerHarness(B1);
        b.Deliver(Frame(1, P, 0, 0, 3, Entry(1, 1), Entry(2, 1), Entry(3, 1)));
        Assert.Equal(3, b.Node.CommitIndex);
        b.Forget();

        // A (wrong) primary of epoch 2 says entry 2 is of epoch 2.
        b.Deliver(Frame(2, B2, 1, 1, 0, Entry(2, 2)));

        Assert.Empty(b.Env.Of<TruncatedLog>());
        Assert.Empty(b.Env.Appended);
        Assert.Equal([1L, 1L, 1L], b.Node.Log.Range(1, 3).Select(e => e.Epoch));
        var violation = Assert.Single(b.Env.EventsOf(ServerEventKind.SafetyViolation));
        Assert.Equal(2, violation.Index);
    }

    [Fact]
    public void Backup_acknowledges_only_what_is_durable_and_verified()
    {
        var b = new ServerHarness(B1);

        b.Deliver(Frame(1, P, 0, 0, 0, Entry(1, 1), Entry(2, 1), Entry(3, 1)));
        Assert.Empty(b.Env.SentTo<ReplicateAck>(P)); // nothing on disk yet
        var sync = Assert.Single(b.Env.Syncs);
        Assert.Equal(3, sync.ThroughIndex);

        b.Input(n => n.OnLogSynced(2, sync.Generation));
        Assert.Empty(b.Env.SentTo<ReplicateAck>(P)); // 3 is not on disk yet

        b.Input(n => n.OnLogSynced(3, sync.Generation));
        var ack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.True(ack.Success);
        Assert.Equal(3, ack.MatchIndex);
    }

    [Fact]
    public void Backup_catching_up_acknowledges_before_the_fsync_but_matches_only_what_is_durable()
    {
        var b = new ServerHarness(B1);

        // The primary has committed through 6: a backlog. The frame is answered at once, with nothing matched yet.
        b.Deliver(Frame(1, P, 0, 0, 6, Entry(1, 1), Entry(2, 1), Entry(3, 1)));
        var early = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.True(early.Success);
        Assert.Equal(3, early.VerifiedIndex);
        Assert.Equal(0, early.MatchIndex); // nothing is on disk: commits and the in-sync set must not count it
        Assert.Empty(b.Env.Syncs); // less than CatchUpSyncBytes arrived

        // The frame that reaches the commit index ends the catch-up: the log is synced, and matched once on disk.
        b.Deliver(Frame(1, P, 3, 1, 6, Entry(4, 1), Entry(5, 1), Entry(6, 1)));
        var sync = Assert.Single(b.Env.Syncs);
        Assert.Equal(6, sync.ThroughIndex);
        Assert.Single(b.Env.SentTo<ReplicateAck>(P)); // no early answer now: it waits for the disk
        b.Input(n => n.OnLogSynced(6, sync.Generation));
        var acks = b.Env.SentTo<ReplicateAck>(P).ToList();
        Assert.Equal(2, acks.Count);
        Assert.Equal(6, acks[^1].MatchIndex);
        Assert.Equal(6, acks[^1].VerifiedIndex);
    }

    [Fact]
    public void Backup_catching_up_asks_for_an_fsync_once_CatchUpSyncBytes_arrived()
    {
        var entrySize = Entry(1, 1).WireSize;
        var b = new ServerHarness(B1, new ServerOptions { CatchUpSyncBytes = 3 * entrySize });

        b.Deliver(Frame(1, P, 0, 0, 100, Entry(1, 1), Entry(2, 1)));
        Assert.Empty(b.Env.Syncs);
        b.Deliver(Frame(1, P, 2, 1, 100, Entry(3, 1)));
        var sync = Assert.Single(b.Env.Syncs);
        Assert.Equal(3, sync.ThroughIndex);

        // The count starts again after each request.
        b.Deliver(Frame(1, P, 3, 1, 100, Entry(4, 1), Entry(5, 1)));
        Assert.Single(b.Env.Syncs);
        b.Input(n => n.OnLogSynced(3, sync.Generation));
        Assert.Equal(3, b.Env.SentTo<ReplicateAck>(P).Last().MatchIndex);
    }

    [Fact]
    public void Backup_catching_up_answers_early_only_while_no_fsync_is_on_its_way()
    {
        var entrySize = Entry(1, 1).WireSize;
        var b = new ServerHarness(B1, new ServerOptions { CatchUpSyncBytes = 2 * entrySize });

        // The threshold is reached: an fsync is asked for, and answers wait for it (a slow disk holds the primary back
        // instead of letting entries pile up in memory).
        b.Deliver(Frame(1, P, 0, 0, 100, Entry(1, 1), Entry(2, 1)));
        var sync = Assert.Single(b.Env.Syncs);
        Assert.Equal(2, sync.ThroughIndex);
        Assert.Empty(b.Env.SentTo<ReplicateAck>(P));
        b.Deliver(Frame(1, P, 2, 1, 100, Entry(3, 1)));
        Assert.Empty(b.Env.SentTo<ReplicateAck>(P));

        // Once it is on disk, what arrived meanwhile is answered at once.
        b.Input(n => n.OnLogSynced(2, sync.Generation));
        var ack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.Equal(2, ack.MatchIndex);
        Assert.Equal(3, ack.VerifiedIndex);
    }

    [Fact]
    public void Backup_does_not_count_a_durable_but_unverified_suffix_as_matching()
    {
        // Entries 3..5 are on disk from epoch 1, but the primary of epoch 2 has only vouched for 1..2.
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1, 1, 1, 1, 1));

        b.Deliver(Frame(2, P, 2, 1, 5));

        var ack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.True(ack.Success);
        Assert.Equal(2, ack.MatchIndex);
        Assert.Equal(2, ack.VerifiedIndex);
        Assert.Equal(2, b.Node.CommitIndex); // and it commits no further than verified
    }

    [Fact]
    public void Backup_ignores_a_sync_completion_from_before_a_truncation()
    {
        var b = new ServerHarness(B1);
        b.Deliver(Frame(1, P, 0, 0, 0, Entry(1, 1), Entry(2, 1), Entry(3, 1)));
        var oldSync = Assert.Single(b.Env.Syncs);

        // New primary: 2@1 and 3@1 go, 2@2 comes; the old sync now completes late.
        b.Deliver(Frame(2, B2, 1, 1, 0, Entry(2, 2)));
        b.Input(n => n.OnLogSynced(oldSync.ThroughIndex, oldSync.Generation));

        Assert.Empty(b.Env.SentTo<ReplicateAck>(B2));
        Assert.Equal(0, b.Node.DurableIndex);

        var newSync = b.Env.Syncs[^1];
        Assert.NotEqual(oldSync.Generation, newSync.Generation);
        b.Input(n => n.OnLogSynced(newSync.ThroughIndex, newSync.Generation));
        var ack = Assert.Single(b.Env.SentTo<ReplicateAck>(B2));
        Assert.Equal(2, ack.MatchIndex);
    }

    [Fact]
    public void Backup_applies_only_committed_entries()
    {
        var b = new ServerHarness(B1);

        b.Deliver(Frame(1, P, 0, 0, 0, Entry(1, 1), Entry(2, 1), Entry(3, 1)));
        Assert.Equal(0, b.Node.State.AppliedIndex);
        Assert.Equal(0, b.Machine.Count);

        b.Deliver(Frame(1, P, 3, 1, 2));
        Assert.Equal(2, b.Node.State.AppliedIndex);
        Assert.Equal(2, b.Machine.Count);

        // A commit index beyond what the backup holds is capped at what it holds.
        b.Deliver(Frame(1, P, 3, 1, 9));
        Assert.Equal(3, b.Node.CommitIndex);
        Assert.Equal(3, b.Machine.Count);
    }

    [Fact]
    public void Backup_adopts_newer_epoch_and_persists_it_before_acking()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1));

        b.Deliver(Frame(3, P, 1, 1, 0));

        Assert.Equal(3, b.Node.Epoch);
        var saved = b.Env.IndexOf(c => c is SavedEpoch { Epoch: 3 });
        var acked = b.Env.IndexOf(c => c is SentToServer { Message: ReplicateAck });
        Assert.True(saved >= 0, "the new epoch must be saved");
        Assert.True(acked > saved, "the epoch must be durable before the backup answers in it");
        Assert.Equal(3, b.Env.SentTo<ReplicateAck>(P)[0].Epoch);
    }

    [Fact]
    public void Backup_adopts_a_newer_epoch_from_the_monitor_and_follows_the_named_primary()
    {
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1));

        b.HeartbeatAck(Config(2, 7, B2, [B2, B1]));

        Assert.Equal(2, b.Node.Epoch);
        Assert.Contains(new SavedEpoch(2), b.Env.Calls);
        Assert.Equal(B2, b.Node.Primary);
        Assert.Equal(ServerRole.Backup, b.Node.Role);
    }

    [Fact]
    public void Backup_tells_clients_it_is_not_primary_and_names_the_primary()
    {
        var b = new ServerHarness(B1);
        b.Deliver(Frame(1, P, 0, 0, 0, Entry(1, 1)));

        b.Write(new ClientRef(5), 42, 1, "a");

        var reply = Single(b.Env.RepliesTo(new ClientRef(5)));
        Assert.Equal(ResponseStatus.NotPrimary, reply.Status);
        Assert.Equal(P, reply.Primary);
        Assert.Equal(1, b.Node.LastIndex);
    }

    [Fact]
    public void Backup_keeps_its_own_copy_of_a_decoded_frame_whose_entry_array_goes_back_to_the_pool()
    {
        // The TCP host gives a decoded frame's entry array back to the pool once the node has handled it; the next frame
        // decoded takes that array and overwrites it. What the backup holds (window and appends) must not change.
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: Log(1));
        static Replicate Decoded(Replicate frame) => Replicate.Parse(MessageCodec.ToFrame(frame).AsSpan(MessageCodec.HeaderSize));

        var first = Decoded(Frame(1, P, 1, 1, 1, Entry(2, 1, "two"), Entry(3, 1, "three")));
        b.Deliver(first);
        Replicate.Recycle(first);
        var second = Decoded(Frame(1, P, 3, 1, 1, Entry(4, 1, "four"), Entry(5, 1, "five")));
        b.Deliver(second);
        Replicate.Recycle(second);

        Assert.Equal(5, b.Node.LastIndex);
        Assert.Equal(["m1", "two", "three", "four", "five"], b.Node.Log.Range(1, 5).Select(e => MessageStoreCommands.DecodeAppendText(e.Command.Span)));
        Assert.Equal([2L, 3L, 4L, 5L], b.Env.Appended.Select(e => e.Index));
        Assert.Equal(["two", "three", "four", "five"], b.Env.Appended.Select(e => MessageStoreCommands.DecodeAppendText(e.Command.Span)));
    }
}

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// Catch-up from a snapshot: a backup that needs entries the primary compacted away receives the primary's snapshot in
/// checksummed chunks (a few in flight, resumed where the backup is after a loss), installs it, and is sent the rest.
/// </summary>
public class SnapshotTransferTests
{
    // Writes pass FirstIncomplete = seq so answered results are dropped and the snapshot stays small. Tiny chunks, so even the message store's small snapshot takes several, and a window of three.
    private static readonly ServerOptions Small = new()
    {
        SnapshotEveryEntries = 500,
        LogWindowEntries = 1,
        LogWindowBytes = 1024,
        SnapshotChunkBytes = 16,
        SnapshotChunksInFlight = 3,
    };

    private static MessageStore Store() => new(new MessageRetention { Messages = 10 });

    /// <summary>A primary alone in its in-sync set that committed 1200 messages, snapshotted and compacted its log.</summary>
    private static ServerHarness CompactedPrimary(ServerOptions? options = null)
    {
        var p = new ServerHarness(P, options ?? Small, disk: new ListLogArchive(), machine: Store());
        p.Push(Config(1, 5, P, [P]));
        p.SyncDisk();
        Assert.True(p.Node.IsServing, "fixture: the primary should be serving");
        for (var i = 1; i <= 1200; i++)
        {
            p.Write(new ClientRef(1), 42, i, $"m{i}", firstIncomplete: i);
            if (i % 100 == 0)
            {
                p.SyncDisk();
            }
        }

        p.SyncDisk();
        for (var i = 0; i < 10 && p.Env.Of<SnapshotSaveRequested>().Skip(i).FirstOrDefault() is { } next; i++)
        {
            p.Input(n => n.OnSnapshotSaved(next.Index));
            p.SyncDisk();
        }

        p.WriteDisk();
        Assert.True(p.Node.Log.FirstIndex > 1000, $"fixture: the primary's log should be compacted (starts at {p.Node.Log.FirstIndex})");
        return p;
    }

    /// <summary>A wiped backup: an empty log and no snapshot.</summary>
    private static ServerHarness WipedBackup() => new(B1, Small, disk: new ListLogArchive(), machine: Store());

    /// <summary>Carries the primary's messages to the backup and back until the backup asks for snapshot chunks.</summary>
    private static void UntilTransferStarts(ServerHarness p, ServerHarness b)
    {
        for (var round = 0; round < 50 && p.Node.Follower(B1)?.Transfer is null; round++)
        {
            p.Tick();
            Exchange(p, b);
        }

        Assert.True(p.Node.Follower(B1)?.Transfer is not null, $"phase: start; expected a snapshot transfer to {B1}, got none (next index {p.Node.Follower(B1)?.NextIndex}, log from {p.Node.Log.FirstIndex})");
    }

    /// <summary>One round: the primary's outbox to the backup (through <paramref name="filter"/>), then the backup's answers back.</summary>
    private static void Exchange(ServerHarness p, ServerHarness b, Func<List<IMessage>, IEnumerable<IMessage>>? filter = null)
    {
        p.SyncDisk();
        var toBackup = p.TakeOutbox().Where(s => s.To == B1).Select(s => s.Message).ToList();
        foreach (var m in filter is null ? toBackup : filter(toBackup))
        {
            Deliver(b, m);
        }

        b.SyncDisk();
        foreach (var m in b.TakeOutbox().Where(s => s.To == P).Select(s => s.Message).ToList())
        {
            Deliver(p, m);
        }
    }

    private static void Deliver(ServerHarness to, IMessage m)
    {
        switch (m)
        {
            case Replicate frame: to.Deliver(frame); break;
            case ReplicateAck ack: to.Deliver(ack); break;
            case SnapshotChunk chunk: to.Deliver(chunk); break;
            case SnapshotAck ack: to.Deliver(ack); break;
            default: throw new InvalidOperationException($"unexpected {m.Type}");
        }
    }

    /// <summary>Runs both until nothing moves (ticking the primary so its resend clock runs).</summary>
    private static void Settle(ServerHarness p, ServerHarness b)
    {
        for (var round = 0; round < 200; round++)
        {
            p.Time.Advance(TimeSpan.FromMilliseconds(20));
            p.HeartbeatAck();
            p.Tick();
            Exchange(p, b);
        }
    }

    private static void AssertCaughtUp(ServerHarness p, ServerHarness b)
    {
        Assert.Equal(p.Node.LastIndex, b.Node.LastIndex);
        Assert.Equal(p.Node.CommitIndex, b.Node.CommitIndex);
        Assert.Equal(p.Node.State.SnapshotBytes(), b.Node.State.SnapshotBytes());

        // Every message the primary retains reads back from the backup: the entries its snapshot still reads came too.
        Assert.Equal(p.Machine.ToList(), b.Machine.ToList());
        Assert.Equal(p.Node.LastIndex, p.Node.Follower(B1)!.MatchIndex);
        Assert.Null(p.Node.Follower(B1)!.Transfer);
        b.Node.CheckInvariants();
        p.Node.CheckInvariants();
    }

    [Fact]
    public void A_wiped_backup_receives_the_snapshot_in_chunks_installs_it_and_is_sent_the_rest()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();

        UntilTransferStarts(p, b);
        Assert.Single(p.Env.EventsOf(ServerEventKind.SnapshotTransferStarted), e => e.Peer == B1);
        Settle(p, b);

        var installed = Assert.Single(b.Env.EventsOf(ServerEventKind.SnapshotInstalled));
        Assert.Equal(p.Node.SnapshotIndex, installed.Index);
        Assert.True(b.Env.Of<SnapshotChunkWritten>().Count() > 3, "the snapshot should take several 16-byte chunks");
        Assert.Empty(b.Env.EventsOf(ServerEventKind.SnapshotChunkRefused));
        var reset = Assert.Single(b.Env.Of<ResetLogCall>());
        Assert.True(reset.AfterIndex < p.Node.SnapshotIndex, $"the log resumes after {reset.AfterIndex}, below the snapshot {p.Node.SnapshotIndex}: the message store reads entries under it");
        AssertCaughtUp(p, b);
    }

    [Fact]
    public void Snapshot_chunks_to_a_backup_outside_the_in_sync_set_are_paced_and_the_transfer_still_completes()
    {
        const long rate = 200;
        var p = CompactedPrimary(Small with { CatchUpMaxBytesPerSecond = rate });
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        var total = p.Node.Follower(B1)!.Transfer!.TotalLength;

        // One second of 20 ms rounds: at most rate × 1 s, plus the bucket (10 ms of the rate, at least 1 byte) and one chunk.
        long sent = 0;
        for (var round = 0; round < 50; round++)
        {
            p.Time.Advance(TimeSpan.FromMilliseconds(20));
            p.HeartbeatAck();
            p.Tick();
            p.SyncDisk();
            var outbox = p.TakeOutbox().Where(s => s.To == B1).Select(s => s.Message).ToList();
            sent += outbox.OfType<SnapshotChunk>().Sum(c => (long)c.Data.Length);
            foreach (var m in outbox)
            {
                Deliver(b, m);
            }

            b.SyncDisk();
            foreach (var m in b.TakeOutbox().Where(s => s.To == P).Select(s => s.Message).ToList())
            {
                Deliver(p, m);
            }
        }

        var most = rate + Math.Max(1, rate / 100) + Small.SnapshotChunkBytes;
        Assert.True(sent <= most, $"paced transfer: expected at most {most} snapshot bytes in 1 s at {rate} B/s, got {sent} (snapshot {total} bytes)");
        // Not starved: the bucket starts in debt from the chunks that began the transfer, so half the rate is the floor.
        Assert.True(sent >= Math.Min(total, rate / 2), $"paced transfer: expected at least {Math.Min(total, rate / 2)} snapshot bytes in 1 s at {rate} B/s, got {sent}");

        for (var i = 0; i < 60 && p.Node.Follower(B1)!.MatchIndex < p.Node.LastIndex; i++)
        {
            Settle(p, b);
        }

        AssertCaughtUp(p, b);
    }

    [Fact]
    public void No_more_chunks_than_the_window_are_unacknowledged()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);

        // The probe's answer opens the window: three chunks, and no more until the backup answers.
        Exchange(p, b);
        var sent = p.TakeOutbox().Select(s => s.Message).OfType<SnapshotChunk>().ToList();
        p.Tick();
        sent.AddRange(p.TakeOutbox().Select(s => s.Message).OfType<SnapshotChunk>());
        Assert.Equal(3, sent.Count(c => c.Data.Length > 0));
    }

    [Fact]
    public void A_lost_chunk_is_refused_after_it_and_sent_again_from_where_the_backup_is()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        Exchange(p, b);

        // Drop the first chunk carrying data: the ones after it do not continue what the backup holds.
        var dropped = false;
        Exchange(p, b, batch => batch.Where(m => dropped || m is not SnapshotChunk { Data.Length: > 0 } || !(dropped = true)));
        Assert.True(dropped, "phase: loss; a chunk should have been in flight");
        Assert.NotEmpty(b.Env.EventsOf(ServerEventKind.SnapshotChunkRefused));

        Settle(p, b);
        Assert.Single(b.Env.EventsOf(ServerEventKind.SnapshotInstalled));
        AssertCaughtUp(p, b);
    }

    [Fact]
    public void Chunks_out_of_order_are_refused_until_the_next_expected_one_arrives()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        Exchange(p, b);
        Exchange(p, b, batch => Enumerable.Reverse(batch));
        Assert.NotEmpty(b.Env.EventsOf(ServerEventKind.SnapshotChunkRefused));

        Settle(p, b);
        AssertCaughtUp(p, b);
    }

    [Fact]
    public void A_damaged_chunk_is_refused_by_its_checksum_and_never_written()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        Exchange(p, b);

        var damaged = false;
        var at = -1L;
        Exchange(p, b, batch => batch.Select(m =>
        {
            if (!damaged && m is SnapshotChunk { Data.Length: > 0 } c)
            {
                damaged = true;
                at = c.Offset;
                var bytes = c.Data.ToArray();
                bytes[0] ^= 0xff;
                return (IMessage)(c with { Data = bytes });
            }

            return m;
        }));

        Assert.True(damaged, "phase: damage; a chunk should have been in flight");
        var refused = b.Env.EventsOf(ServerEventKind.SnapshotChunkRefused);
        Assert.Contains(refused, e => e.Detail.Contains("checksum", StringComparison.Ordinal));
        Assert.DoesNotContain(b.Env.Of<SnapshotChunkWritten>(), w => w.Offset == at);

        Settle(p, b);
        AssertCaughtUp(p, b);
    }

    [Fact]
    public void A_snapshot_that_fails_its_whole_check_is_discarded_and_sent_again_from_the_start()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        b.Env.DamageNextInstall = true;
        UntilTransferStarts(p, b);
        Settle(p, b);

        Assert.Equal([false, true], b.Env.Of<SnapshotInstallCompleted>().Select(c => c.Sound));
        Assert.Contains(b.Env.EventsOf(ServerEventKind.SnapshotChunkRefused), e => e.Detail.Contains("discarded", StringComparison.Ordinal));
        AssertCaughtUp(p, b);
    }

    [Fact]
    public void After_a_broken_connection_the_transfer_resumes_from_what_the_backup_holds()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        Exchange(p, b);
        Exchange(p, b);
        var held = b.Env.ReceivingLength;
        Assert.True(held > 0, "phase: first chunks; the backup should hold some of the snapshot");

        // The connection drops with chunks on the way; they are lost.
        p.TakeOutbox();
        p.Input(n => n.OnPeerConnectionLost(B1));
        var resumed = p.TakeOutbox().Select(s => s.Message).OfType<SnapshotChunk>().ToList();
        var probe = Assert.Single(resumed);
        Assert.Equal(0, probe.Data.Length);
        Deliver(b, probe);
        var answer = Assert.Single(b.TakeOutbox().Select(s => s.Message).OfType<SnapshotAck>());
        Assert.Equal(held, answer.NextOffset);
        Deliver(p, answer);
        var next = p.TakeOutbox().Select(s => s.Message).OfType<SnapshotChunk>().First();
        Assert.Equal(held, next.Offset);
        Deliver(b, next);
        b.TakeOutbox();

        Settle(p, b);
        Assert.DoesNotContain(b.Env.Of<SnapshotChunkWritten>(), w => w.Offset < held && w.Offset > 0 && b.Env.Of<SnapshotChunkWritten>().Count(x => x.Offset == w.Offset) > 1);
        AssertCaughtUp(p, b);
    }

    [Fact]
    public void A_new_epoch_during_the_transfer_aborts_it_on_both_sides()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        Exchange(p, b);
        var inFlight = p.TakeOutbox().Select(s => s.Message).OfType<SnapshotChunk>().ToList();

        // Another primary leads epoch 2; the backup hears of it first.
        b.Push(Config(2, 6, B2, [B2]), withLease: false);
        Assert.Equal(2, b.Node.Epoch);
        foreach (var chunk in inFlight)
        {
            b.Deliver(chunk);
        }

        Assert.Empty(b.Env.EventsOf(ServerEventKind.SnapshotInstalled));
        Assert.NotEmpty(b.Env.EventsOf(ServerEventKind.StaleFrameRejected));

        // Its answers carry epoch 2: the old primary steps down and streams nothing more.
        foreach (var m in b.TakeOutbox().Where(s => s.To == P).Select(s => s.Message).ToList())
        {
            Deliver(p, m);
        }

        Assert.Equal(ServerRole.Backup, p.Node.Role);
        p.Tick();
        Assert.Empty(p.TakeOutbox().Select(s => s.Message).OfType<SnapshotChunk>());
        b.Node.CheckInvariants();
    }

    [Fact]
    public void The_backup_is_not_asked_into_the_in_sync_set_before_it_has_caught_up()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);

        // Mid-transfer, alive and answering: not in sync, since its match index is far behind.
        p.Time.Advance(TimeSpan.FromMilliseconds(20));
        p.HeartbeatAck();
        p.Tick();
        Exchange(p, b);

        Assert.NotNull(p.Node.Follower(B1)!.Transfer);
        Assert.DoesNotContain(p.Env.ToMonitor<InSyncChange>(), c => c.Op == InSyncOp.Add && c.Member == B1);

        Settle(p, b);
        AssertCaughtUp(p, b);
        Assert.Contains(p.Env.ToMonitor<InSyncChange>(), c => c.Op == InSyncOp.Add && c.Member == B1);
    }

    [Fact]
    public void A_backfilling_backup_named_primary_refuses_to_lead()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);

        // Deliver chunks until the install, but none of the entries after it.
        for (var round = 0; round < 50 && b.Env.EventsOf(ServerEventKind.SnapshotInstalled).Count == 0; round++)
        {
            Exchange(p, b, batch => batch.Where(m => m is SnapshotChunk));
        }

        Assert.True(b.Node.Backfilling, $"phase: installed; expected the backup's log ({b.Node.LastIndex}) below its snapshot ({b.Node.SnapshotIndex})");
        b.Push(Config(2, 6, B1, [B1]));
        Assert.Equal(ServerRole.Backup, b.Node.Role);
        Assert.NotEmpty(b.Env.EventsOf(ServerEventKind.SafetyViolation));
        b.Node.CheckInvariants();
    }

    [Fact]
    public void A_backup_restarted_while_backfilling_keeps_its_snapshot_and_the_entries_received_and_catches_up()
    {
        var p = CompactedPrimary();
        var b = WipedBackup();
        UntilTransferStarts(p, b);
        for (var round = 0; round < 50 && b.Env.EventsOf(ServerEventKind.SnapshotInstalled).Count == 0; round++)
        {
            Exchange(p, b, batch => batch.Where(m => m is SnapshotChunk));
        }

        // Three of the entries the snapshot's state still reads arrive and reach the disk; then the process dies.
        var reset = Assert.Single(b.Env.Of<ResetLogCall>());
        Exchange(p, b, batch => batch.OfType<Replicate>().Take(1).Select(r => (IMessage)(r with { Entries = r.Entries[..3] })));
        Assert.True(b.Node.Backfilling, $"phase: part-way; expected the backup's log ({b.Node.LastIndex}) below its snapshot ({b.Node.SnapshotIndex})");
        Assert.Equal(reset.AfterIndex + 3, b.Node.LastIndex);
        b.WriteDisk();

        // What the host reads back at a restart: the installed snapshot, where its log resumes, and the log on disk.
        var index = b.Node.SnapshotIndex;
        var snapshot = new ServerSnapshot(index, b.Node.SnapshotEpoch, b.Env.StoredSnapshots[index]) { LogResumesAfter = reset.AfterIndex, LogResumesAfterEpoch = reset.Epoch };
        var disk = b.Disk!;
        var restarted = new ServerHarness(B1, Small, recoveredEpoch: b.Node.Epoch, log: disk.Read(disk.FirstIndex, int.MaxValue, int.MaxValue), disk: disk, snapshot: snapshot, machine: Store());
        Assert.True(restarted.Node.Backfilling, $"phase: restarted; expected the backup's log ({restarted.Node.LastIndex}) below its snapshot ({restarted.Node.SnapshotIndex})");
        Assert.Equal((reset.AfterIndex + 3, index), (restarted.Node.LastIndex, restarted.Node.CommitIndex));
        restarted.Node.CheckInvariants();

        Settle(p, restarted);
        AssertCaughtUp(p, restarted);
    }

    [Fact]
    public void A_backup_takes_no_snapshot_past_what_its_own_disk_holds()
    {
        var p = ServerHarness.StartPrimary(inSync: [P], options: Small with { SnapshotEveryEntries = 0 });
        for (var i = 1; i <= 100; i++)
        {
            p.Write(new ClientRef(1), 42, i, $"m{i}", firstIncomplete: i);
        }

        p.SyncDisk();
        Assert.True(p.Node.CommitIndex > 60, $"fixture: the primary should have committed its writes (commit {p.Node.CommitIndex})");
        var b = new ServerHarness(B1, Small with { SnapshotEveryEntries = 50 }, disk: new ListLogArchive(), machine: Store());
        b.Push(Config(1, 5, P, [P]), withLease: false);

        // Committed entries reach the backup, which applies them before its own disk has them.
        b.Deliver(new Replicate(p.Node.Epoch, P, 0, 0, p.Node.CommitIndex, p.Now, p.Node.Log.Slice(1, 1000, int.MaxValue)));
        Assert.True(b.Node.State.AppliedIndex > b.Node.DurableIndex + 50, $"phase: applied; expected entries applied ({b.Node.State.AppliedIndex}) well before they are durable ({b.Node.DurableIndex})");
        Assert.Empty(b.Env.Of<SnapshotSaveRequested>());

        // Once its disk has them, the snapshot is taken.
        b.SyncDisk();
        var asked = Assert.Single(b.Env.Of<SnapshotSaveRequested>());
        Assert.True(asked.Index <= b.Node.DurableIndex, $"snapshot at {asked.Index} past the durable log ({b.Node.DurableIndex})");
    }
}

using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>A long-running server: snapshots, compaction below them, a bounded window, and a restart from snapshot + tail.</summary>
public class SnapshotTests
{
    private static readonly ServerOptions Small = new() { SnapshotEveryEntries = 500, LogWindowEntries = 1, LogWindowBytes = 1024 };

    /// <summary>A primary alone in its in-sync set, with a disk (<paramref name="disk"/>, or a plain one), that has committed <paramref name="writes"/> messages.</summary>
    internal static ServerHarness Primary(int writes, ServerOptions? options = null, MessageStore? machine = null, ListLogArchive? disk = null)
    {
        var p = new ServerHarness(P, options ?? Small, disk: disk ?? new ListLogArchive(), machine: machine);
        p.Push(Config(1, 5, P, [P]));
        p.SyncDisk();
        Assert.True(p.Node.IsServing, "fixture: the primary should be serving");
        for (var i = 1; i <= writes; i++)
        {
            p.Write(new ClientRef(1), 42, i, $"m{i}");
            if (i % 100 == 0)
            {
                p.SyncDisk();
            }
        }

        p.SyncDisk();
        return p;
    }

    /// <summary>Completes every snapshot asked for so far (the host's background writer), in order.</summary>
    private static List<SnapshotSaveRequested> SaveSnapshots(ServerHarness h)
    {
        var saved = new List<SnapshotSaveRequested>();
        for (var i = 0; i < 100 && h.Env.Of<SnapshotSaveRequested>().Skip(saved.Count).FirstOrDefault() is { } next; i++)
        {
            saved.Add(next);
            h.Input(n => n.OnSnapshotSaved(next.Index));
            h.SyncDisk();
        }

        h.WriteDisk();
        return saved;
    }

    private static IReadOnlyList<SequencedMessage> Read(ServerHarness h, long from, long count)
    {
        var client = new ClientRef(77);
        h.Request(client, new ClientRequest(9, 1, 1, RequestKind.Read, MessageStoreCommands.Read(from, count)));
        return MessageStoreCommands.DecodeMessages(h.Env.RepliesTo(client)[^1].Payload.Span);
    }

    [Fact]
    public void The_window_stays_bounded_as_the_log_grows_and_old_messages_are_read_from_disk()
    {
        var p = Primary(5000);

        Assert.Equal(5001, p.Node.LastIndex);
        Assert.Equal(5001, p.Node.CommitIndex);
        Assert.True(p.Node.Log.WindowCount <= 1024, $"window holds {p.Node.Log.WindowCount} entries after 5001, limit 1 entry (a chunk of 1024 at most)");
        Assert.True(p.Node.Log.WindowStart > 3000, $"window starts at {p.Node.Log.WindowStart}");

        var reads = p.Disk!.Reads;
        var page = Read(p, 2, 3);
        Assert.Equal(["m2", "m3", "m4"], page.Select(m => m.Text));
        Assert.True(p.Disk.Reads > reads, "old messages must come from the log on disk");
        Assert.Equal(5000, Read(p, 1, 10_000).Count);
    }

    [Fact]
    public void A_snapshot_is_taken_every_N_applied_entries_and_the_log_is_compacted_below_it_once_stored()
    {
        var p = Primary(1200, machine: new MessageStore(new MessageRetention { Messages = 10 }));

        var asked = p.Env.Of<SnapshotSaveRequested>().ToList();
        var first = Assert.Single(asked);
        Assert.Equal(500, first.Index);
        Assert.Equal(1, first.Epoch);
        Assert.Empty(p.Env.Of<CompactedLog>());

        // Stored: compaction below it, and the next snapshot (due since 1000) is asked for at once. Each compaction
        // stops at the first message the stored snapshot's state still holds (message n sits at log index n + 1):
        // 490 at 500, 1191 at 1201, and keeps one entry under it (a transfer resumes a backup's log after it).
        var saved = SaveSnapshots(p);
        Assert.Equal([500L, 1201L], saved.Select(s => s.Index));
        Assert.Equal([490L, 1191L], p.Env.Of<CompactedLog>().Select(c => c.BelowIndex));
        Assert.Equal(1201, p.Node.SnapshotIndex);
        Assert.Equal(1191, p.Node.CompactedBelow);
    }

    [Fact]
    public void A_store_that_keeps_every_message_pins_the_log_so_nothing_it_reads_is_compacted()
    {
        var p = Primary(1200);
        SaveSnapshots(p);

        Assert.Empty(p.Env.Of<CompactedLog>());
        Assert.Equal(1, p.Node.Log.FirstIndex);
        Assert.Equal(1200, Read(p, 1, 10_000).Count);
    }

    [Fact]
    public void Compaction_never_passes_the_first_retained_message_so_retention_keeps_exactly_what_it_promises()
    {
        var p = Primary(1200, machine: new MessageStore(new MessageRetention { Messages = 100 }));
        SaveSnapshots(p);

        var store = p.Machine;
        Assert.Equal(1101, store.FirstRetained);
        var compacted = p.Env.Of<CompactedLog>().Select(c => c.BelowIndex).ToList();
        Assert.NotEmpty(compacted);
        Assert.All(compacted, c => Assert.True(c <= store.RetainedFromIndex, $"compacted below {c}, first retained message at log index {store.RetainedFromIndex}"));

        // Every retained message is still readable after compaction; the ones before are refused, clearly.
        Assert.Equal(Enumerable.Range(1101, 100).Select(i => $"m{i}"), Read(p, 1101, 1000).Select(m => m.Text));
        var removed = Assert.Throws<MessagesRemovedException>(() => Read(p, 1, 10));
        Assert.Equal(1101, removed.FirstRetained);
    }

    [Fact]
    public void A_restart_loads_the_snapshot_and_replays_only_the_tail()
    {
        var p = Primary(1200, machine: new MessageStore(new MessageRetention { Messages = 100 }));
        var saved = SaveSnapshots(p);
        var last = saved[^1];
        var tail = p.Disk!.Read(last.Index + 1, int.MaxValue, int.MaxValue);
        Assert.Equal(p.Node.LastIndex - last.Index, tail.Length);

        var restarted = new ServerHarness(
            P,
            Small,
            recoveredEpoch: 1,
            log: tail,
            disk: p.Disk,
            snapshot: new ServerSnapshot(last.Index, last.Epoch, last.State),
            machine: new MessageStore(new MessageRetention { Messages = 100 }));

        Assert.Equal(last.Index, restarted.Node.State.AppliedIndex);
        Assert.Equal(last.Index, restarted.Node.CommitIndex);
        Assert.Equal(p.Node.LastIndex, restarted.Node.LastIndex);
        Assert.Equal(tail.Length, restarted.Node.Log.WindowCount);
        Assert.Equal(p.Machine.ToList().Where(m => m.Seq <= restarted.Machine.Count), restarted.Machine.ToList().Where(m => m.Seq >= p.Machine.FirstRetained));

        // Promoted in epoch 2, it commits the tail and serves the same messages the old primary did.
        restarted.Push(Config(2, 6, P, [P]));
        restarted.SyncDisk();
        Assert.True(restarted.Node.IsServing);
        Assert.Equal(p.Machine.ToList(), restarted.Machine.ToList());
    }

    [Fact]
    public void A_backup_behind_the_compacted_log_is_reported_as_needing_a_snapshot_and_sent_no_frames()
    {
        var p = new ServerHarness(P, Small, disk: new ListLogArchive(), machine: new MessageStore(new MessageRetention { Messages = 10 }));
        p.Push(Config(1, 5, P, [P], members: [P, B1]));
        p.SyncDisk();
        for (var i = 1; i <= 1200; i++)
        {
            p.Write(new ClientRef(1), 42, i, $"m{i}");
        }

        p.SyncDisk();
        SaveSnapshots(p);
        var lowest = p.Node.Log.LowestReplicablePrev;
        Assert.True(lowest > 1, "fixture: the log should be compacted");
        p.Forget();

        // The backup's log is empty. The primary tries once from the lowest entry it still has...
        p.Deliver(new ReplicateAck(1, B1, BackupIncarnation, false, 0, 0, 0, p.Node.LastIndex, 0, 0, 0));
        p.Advance(TimeSpan.FromMilliseconds(50), renewLease: true);
        var probe = Assert.Single(p.Env.SentTo<Replicate>(B1));
        Assert.Equal(lowest, probe.PrevIndex);
        Assert.Empty(p.Env.EventsOf(ServerEventKind.NeedsSnapshot));

        // ...and when that is refused too, reports it and sends nothing more: only a snapshot can help.
        p.Deliver(new ReplicateAck(1, B1, BackupIncarnation, false, 0, 0, 0, lowest, 0, 0, 0));
        p.Advance(TimeSpan.FromMilliseconds(300), renewLease: true);

        var reported = Assert.Single(p.Env.EventsOf(ServerEventKind.NeedsSnapshot));
        Assert.Equal(B1, reported.Peer);
        Assert.Single(p.Env.SentTo<Replicate>(B1));
    }

    [Fact]
    public void A_backup_whose_snapshot_covers_the_frame_start_takes_the_entries_after_it()
    {
        // The backup restarted from a snapshot at 10 (epoch 1) with nothing after it on disk.
        var source = new ReplicatedState(new MessageStore());
        for (var i = 1; i <= 10; i++)
        {
            source.Apply(Entry(i, 1));
        }

        var b = new ServerHarness(B1, Small, recoveredEpoch: 1, disk: new ListLogArchive(firstIndex: 11), snapshot: new ServerSnapshot(10, 1, source.SnapshotBytes()));

        // A frame from before its snapshot (prev 5, unknown here): the overlap is committed, so it is taken as matching.
        b.Deliver(Frame(2, P, 5, 1, 12, [.. Enumerable.Range(6, 7).Select(i => Entry(i, i <= 10 ? 1 : 2))]));

        b.SyncDisk();
        Assert.Equal(12, b.Node.LastIndex);
        Assert.Empty(b.Env.Of<TruncatedLog>());
        Assert.Equal([11L, 12L], b.Env.Appended.Select(e => e.Index));
        var ack = Assert.Single(b.Env.SentTo<ReplicateAck>(P));
        Assert.True(ack.Success);
    }
}

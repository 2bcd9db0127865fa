using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// A server never acts in an epoch it has not made durable. A promotion writes no epoch file: the epoch's first entry
/// carries the epoch to disk, and a restart recovers the highest epoch of its log. These tests crash a new primary on
/// either side of that entry's sync and check what the restarted process knows and may do.
/// </summary>
public class EpochDurabilityTests
{
    private static readonly ClusterConfig Promotion = Config(2, 6, P, All);

    [Fact]
    public void A_promotion_saves_no_epoch_file_and_sends_nothing_until_its_first_entry_is_durable()
    {
        var p = new ServerHarness(P, recoveredEpoch: 1, log: Log(1, 1));

        p.Push(Promotion);

        Assert.Equal(ServerRole.Primary, p.Node.Role);
        Assert.Equal(2, p.Node.Epoch);
        Assert.DoesNotContain(p.Env.Calls, c => c is SavedEpoch);
        var start = Assert.Single(p.Env.Appended);
        Assert.Equal((3L, 2L, EntryKind.EpochStart), (start.Index, start.Epoch, start.Kind));
        Assert.Contains(p.Env.Syncs, s => s.ThroughIndex >= start.Index);
        Assert.Empty(p.Env.SentTo<Replicate>(B1));
        Assert.Empty(p.Env.SentTo<Replicate>(B2));

        // Ticks before the sync (keep-alives, resends) send nothing of the epoch either.
        p.Advance(TimeSpan.FromMilliseconds(200), renewLease: true);
        Assert.Empty(p.Env.SentTo<Replicate>(B1));

        p.SyncDisk();

        foreach (var backup in new[] { B1, B2 })
        {
            var frame = Assert.Single(p.Env.SentTo<Replicate>(backup));
            Assert.Equal(2, frame.Epoch);
            Assert.Contains(frame.Entries.ToArray(), e => e.Index == start.Index && e.Kind == EntryKind.EpochStart);
        }
    }

    [Fact]
    public void A_new_primary_that_crashes_before_its_first_entry_is_durable_left_no_trace_and_may_take_the_promotion_again()
    {
        var (disk, first) = BackupOfEpochOne();

        first.Push(Promotion);
        first.Write(new ClientRef(1), 42, 1, "a");

        // The crash: the disk never completed the sync, so neither the epoch start nor the write reached it.
        Assert.Empty(first.Env.SentTo<Replicate>(B1));
        Assert.Empty(first.Env.SentTo<Replicate>(B2));
        Assert.Empty(first.Env.Replies);

        var second = new ServerHarness(P, recoveredEpoch: 1, log: disk.Read(1, int.MaxValue, int.MaxValue), disk: disk);
        Assert.Equal(1, second.Node.Epoch);

        // The monitor hands a restarted process that never heard of the epoch its promotion again: safe, since no
        // other server holds anything the first life wrote in it.
        second.Push(Promotion);
        Assert.Equal(ServerRole.Primary, second.Node.Role);
        Assert.Equal(2, second.Node.Epoch);
    }

    [Fact]
    public void A_new_primary_that_crashes_after_its_first_entry_is_durable_recovers_the_epoch_from_its_log_and_never_leads_it_again()
    {
        var (disk, first) = BackupOfEpochOne();

        first.Push(Promotion);
        first.SyncDisk();
        Assert.NotEmpty(first.Env.SentTo<Replicate>(B1));

        // The crash, with no epoch file for epoch 2 (the saved epoch is still 1): the log alone must say epoch 2.
        Assert.DoesNotContain(first.Env.Calls, c => c is SavedEpoch);
        var second = new ServerHarness(P, recoveredEpoch: 1, log: disk.Read(1, int.MaxValue, int.MaxValue), disk: disk);
        Assert.Equal(2, second.Node.Epoch);

        // Its backups may hold entries of the first life's epoch 2: leading epoch 2 again could write others at the
        // same indexes. It stays a backup and waits for a newer epoch.
        second.Push(Promotion);
        Assert.Equal(ServerRole.Backup, second.Node.Role);
        Assert.Empty(second.Env.Appended);
    }

    /// <summary>A backup of epoch 1 holding two entries, with the disk that holds them.</summary>
    private static (ListLogArchive Disk, ServerHarness Server) BackupOfEpochOne()
    {
        var disk = new ListLogArchive();
        foreach (var e in Log(1, 1))
        {
            disk.Write(e);
        }

        return (disk, new ServerHarness(P, recoveredEpoch: 1, log: Log(1, 1), disk: disk));
    }

    [Fact]
    public void A_primary_stepping_down_saves_the_newer_epoch_before_anything_it_does_in_it()
    {
        var p = StartPrimary();

        p.Deliver(Frame(3, B1, 1, 1, 1, Entry(2, 3)));

        var saved = p.Env.IndexOf(c => c is SavedEpoch { Epoch: 3 });
        Assert.True(saved >= 0, "the newer epoch must be saved: a backup's later truncation may remove every entry of the epochs it acted in");
        var acted = p.Env.IndexOf(c => c is TruncatedLog or AppendedLog or SentToServer { Message: ReplicateAck });
        Assert.True(acted > saved, $"the epoch must be saved (call {saved}) before the first thing done in it (call {acted})");
    }
}

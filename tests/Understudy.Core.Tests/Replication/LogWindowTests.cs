namespace Understudy.Core.Tests.Replication;

/// <summary>The log's bounded window: old entries leave memory only when committed and durable, and are read back from disk.</summary>
public class LogWindowTests
{
    private static LogEntry E(long index, long epoch) => new(index, epoch, EntryKind.Command, 7, index, index, new byte[] { (byte)index }, 0);

    private static long EpochOf(long index) => index <= 3000 ? 1 : index <= 6000 ? 4 : 9;

    private static (ReplicatedLog Log, ReplicatedLog Full, ListLogArchive Disk) Filled(int count, int windowEntries, long windowBytes = long.MaxValue)
    {
        var disk = new ListLogArchive();
        var log = new ReplicatedLog(0, 0, [], disk, windowEntries, windowBytes);
        var full = new ReplicatedLog();
        for (var i = 1; i <= count; i++)
        {
            var e = E(i, EpochOf(i));
            log.Append(e);
            full.Append(e);
            disk.Write(e);
            log.Evict(i);
        }

        return (log, full, disk);
    }

    [Fact]
    public void The_window_stays_within_its_entry_limit_as_the_log_grows_and_every_lookup_reads_old_entries_from_disk()
    {
        var (log, full, disk) = Filled(10_000, windowEntries: 2048);

        Assert.True(log.WindowCount <= 2048, $"window holds {log.WindowCount} entries, limit 2048");
        Assert.True(log.WindowStart > 1, $"nothing was evicted: window starts at {log.WindowStart}");
        Assert.Equal(10_000, log.LastIndex);
        Assert.Equal(1, log.FirstIndex);

        foreach (var i in new long[] { 1, 5, 1024, 1025, 3000, 3001, 6000, 6001, log.WindowStart - 1, log.WindowStart, 10_000 })
        {
            Assert.Equal(full[i], log[i]);
            Assert.Equal(full.EpochAt(i), log.EpochAt(i));
        }

        var readsBefore = disk.Reads;
        Assert.Equal(full.Slice(10, 500, int.MaxValue), log.Slice(10, 500, int.MaxValue));
        Assert.True(disk.Reads > readsBefore, "a slice below the window must come from disk");
        Assert.Equal(full.Range(1, 10_000), log.Range(1, 10_000));
        foreach (var epoch in new long[] { 1, 4, 9 })
        {
            Assert.Equal(full.FirstIndexOfEpoch(epoch, 10_000), log.FirstIndexOfEpoch(epoch, 10_000));
            Assert.Equal(full.LastIndexOfEpoch(epoch), log.LastIndexOfEpoch(epoch));
        }

        Assert.Equal(0, log.LastIndexOfEpoch(2));
    }

    [Fact]
    public void The_window_also_stays_within_its_byte_limit()
    {
        var (log, _, _) = Filled(10_000, windowEntries: int.MaxValue, windowBytes: 100_000);

        Assert.True(log.WindowBytes <= 100_000, $"window holds {log.WindowBytes} bytes, limit 100000");
        Assert.Equal(log.Range(log.WindowStart, log.LastIndex).Sum(e => (long)e.WireSize), log.WindowBytes);
    }

    [Fact]
    public void Entries_not_yet_committed_and_durable_are_never_evicted()
    {
        var disk = new ListLogArchive();
        var log = new ReplicatedLog(0, 0, [], disk, 1024, long.MaxValue);
        for (var i = 1; i <= 5000; i++)
        {
            log.Append(E(i, 1));

            // Only the first 1500 are durable: the rest exist nowhere but in memory.
            if (i <= 1500)
            {
                disk.Write(E(i, 1));
            }

            log.Evict(Math.Min(i, 1500));
        }

        Assert.True(log.WindowStart <= 1501, $"window starts at {log.WindowStart}, past the last durable entry 1500");
        Assert.Equal((1501L, 1L), (log[1501].Index, log[1501].Epoch));
        Assert.Equal((5000L, 1L), (log[5000].Index, log[5000].Epoch));

        // Truncating an uncommitted suffix still works; truncating into what left memory is refused.
        log.TruncateFrom(4000);
        Assert.Equal(3999, log.LastIndex);
        Assert.Throws<InvalidOperationException>(() => log.TruncateFrom(log.WindowStart - 1));
    }

    [Fact]
    public void Without_a_disk_to_read_back_from_nothing_is_evicted()
    {
        var log = new ReplicatedLog();
        for (var i = 1; i <= 5000; i++)
        {
            log.Append(E(i, 1));
            log.Evict(i);
        }

        Assert.Equal(1, log.WindowStart);
        Assert.Equal(5000, log.WindowCount);
    }

    [Fact]
    public void A_log_restarted_after_a_snapshot_knows_the_snapshot_edge_epoch_and_nothing_below_the_first_entry()
    {
        var disk = new ListLogArchive();
        for (var i = 90; i <= 110; i++)
        {
            disk.Write(E(i, i <= 100 ? 3 : 5));
        }

        var log = new ReplicatedLog(100, 3, [.. Enumerable.Range(101, 10).Select(i => E(i, 5))], disk, 1024, long.MaxValue);
        Assert.Equal(110, log.LastIndex);
        Assert.Equal(90, log.FirstIndex);
        Assert.Equal(3, log.EpochAt(100));
        Assert.Equal((95L, 3L), (log[95].Index, log[95].Epoch));

        // Compaction below the snapshot: the edge keeps its epoch; entries under it are gone.
        disk.RemoveBelow(101);
        Assert.Equal(101, log.FirstIndex);
        Assert.Equal(3, log.EpochAt(100));
        Assert.True(log.CanReplicateAfter(100));
        Assert.False(log.CanReplicateAfter(99));
        Assert.False(log.KnowsEpochAt(99));
        Assert.Equal(100, log.LastIndexOfEpoch(3));
        Assert.Throws<InvalidOperationException>(() => log[99]);
    }
}

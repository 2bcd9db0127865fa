namespace Understudy.Core.Tests.Replication;

/// <summary>The in-memory log: indexed from 1, epochs never decreasing, and the lookups conflict hints rely on.</summary>
public class ReplicatedLogTests
{
    // Epochs by index: 1 1 2 2 2 5
    private static ReplicatedLog Sample() => new(Log(1, 1, 2, 2, 2, 5));

    [Fact]
    public void ReplicatedLog_keeps_order_across_its_storage_chunks_through_truncations_and_slices()
    {
        static LogEntry E(long index, long epoch) => new(index, epoch, EntryKind.Command, 7, index, index, new byte[] { (byte)index }, 0);

        var log = new ReplicatedLog();
        for (var i = 1; i <= 3000; i++)
        {
            log.Append(E(i, i <= 2000 ? 1 : 2));
        }

        // A slice across chunk boundaries, entry for entry.
        var slice = log.Slice(1000, 1100, int.MaxValue);
        Assert.Equal(1100, slice.Length);
        Assert.Equal(Enumerable.Range(1000, 1100).Select(i => (long)i), slice.Select(e => e.Index));

        // Truncations at, just after and just before a chunk boundary, then appends that refill the space.
        foreach (var cut in new long[] { 2049, 2048, 1025, 1024, 1 })
        {
            log.TruncateFrom(cut);
            Assert.Equal(cut - 1, log.LastIndex);
            Assert.Equal(cut == 1 ? 0 : cut - 1 > 2000 ? 2 : 1, log.LastEpoch);
            Assert.Throws<ArgumentOutOfRangeException>(() => log[cut]);
        }

        for (var i = 1; i <= 1500; i++)
        {
            log.Append(E(i, 3));
        }

        Assert.Equal(1500, log.LastIndex);
        Assert.Equal(3, log.EpochAt(1024));
        Assert.Equal(1025, log[1025].Index);
        Assert.Equal(1500, log.Slice(1, 2000, int.MaxValue).Length);
        Assert.Equal(3, log.LastIndexOfEpoch(3) - 1497);
    }

    [Fact]
    public void ReplicatedLog_FirstIndexOfEpoch_finds_where_an_epoch_begins_at_or_before_an_index()
    {
        var log = Sample();

        Assert.Equal(1, log.FirstIndexOfEpoch(1, 2));
        Assert.Equal(3, log.FirstIndexOfEpoch(2, 5));
        Assert.Equal(3, log.FirstIndexOfEpoch(2, 4));
        Assert.Equal(3, log.FirstIndexOfEpoch(2, 3));
        Assert.Equal(6, log.FirstIndexOfEpoch(5, 6));
    }

    [Fact]
    public void ReplicatedLog_LastIndexOfEpoch_finds_where_an_epoch_ends_or_zero_when_absent()
    {
        var log = Sample();

        Assert.Equal(2, log.LastIndexOfEpoch(1));
        Assert.Equal(5, log.LastIndexOfEpoch(2));
        Assert.Equal(6, log.LastIndexOfEpoch(5));
        Assert.Equal(0, log.LastIndexOfEpoch(3));
        Assert.Equal(0, log.LastIndexOfEpoch(0));
        Assert.Equal(0, log.LastIndexOfEpoch(9));
        Assert.Equal(0, new ReplicatedLog().LastIndexOfEpoch(1));
    }

    [Fact]
    public void ReplicatedLog_Slice_stays_within_bounds()
    {
        var log = Sample();

        Assert.Equal([1L, 2L, 3L], log.Slice(1, 3, int.MaxValue).Select(e => e.Index));
        Assert.Equal([5L, 6L], log.Slice(5, 100, int.MaxValue).Select(e => e.Index));
        Assert.Equal([6L], log.Slice(6, 100, int.MaxValue).Select(e => e.Index));
        Assert.Empty(log.Slice(7, 100, int.MaxValue));
        Assert.Empty(log.Slice(100, 100, int.MaxValue));

        // A byte limit cuts the batch short but always carries at least one entry.
        Assert.Single(log.Slice(1, 100, 1));
        var two = log[1].WireSize + log[2].WireSize;
        Assert.Equal(2, log.Slice(1, 100, two).Length);
    }

    [Fact]
    public void ReplicatedLog_append_out_of_order_throws()
    {
        var log = Sample();

        Assert.Throws<InvalidOperationException>(() => log.Append(Entry(8, 5)));
        Assert.Throws<InvalidOperationException>(() => log.Append(Entry(6, 5)));
        Assert.Throws<InvalidOperationException>(() => log.Append(Entry(7, 4))); // epochs never go back
        Assert.Equal(6, log.LastIndex);

        log.Append(Entry(7, 5));
        Assert.Equal(7, log.LastIndex);
    }

    [Fact]
    public void ReplicatedLog_truncates_a_suffix_and_reports_the_empty_prefix_as_epoch_zero()
    {
        var log = Sample();

        log.TruncateFrom(4);
        log.TruncateFrom(10); // beyond the end: nothing

        Assert.Equal(3, log.LastIndex);
        Assert.Equal(2, log.LastEpoch);
        Assert.Equal(0, log.EpochAt(0));
        Assert.Equal([1L, 2L, 3L], log.Range(-5, 99).Select(e => e.Index));
        log.Append(new LogEntry(4, 6, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty, 0));
        Assert.Equal(6, log.LastEpoch);
    }
}

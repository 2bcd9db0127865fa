using Understudy.Protocol;

namespace Understudy.Storage.Tests;

/// <summary>Reading the log back from disk, removing old segments, and restarting from the tail.</summary>
public sealed class LogReadTests : IDisposable
{
    private const int CommandSize = 8; // 69-byte records (8 header + 53 fixed + 8)
    private const int RecordSize = LogRecord.HeaderSize + LogRecord.FixedPayloadSize + CommandSize;
    private readonly TempFolder _folder = new();
    private readonly SyncRecorder _synced = new();

    public void Dispose() => _folder.Dispose();

    private DurableLog Open(long segmentSize, long recoverFrom = 1, int readHandles = DurableLogOptions.DefaultReadHandles) =>
        DurableLog.Open(_folder.Path, new DurableLogOptions { SegmentSize = segmentSize, FsyncPolicy = FsyncPolicy.Never, Synced = _synced.OnSynced, ReadHandles = readHandles }, recoverFrom);

    private long _generation;

    /// <summary>Appends first..last and waits until they are written (each call its own sync generation, so an earlier report never answers it).</summary>
    private async Task<LogEntry[]> WriteAsync(DurableLog log, long first, long last, long epoch = 1)
    {
        var entries = Entries.Range(first, last, epoch, CommandSize);
        log.Append(entries);
        var generation = ++_generation;
        log.RequestSync(last, generation);
        await _synced.WaitForAsync(last, generation);
        return entries;
    }

    /// <summary>Reads first..last in pages of <paramref name="page"/> entries.</summary>
    private static List<LogEntry> ReadAll(DurableLog log, long first, long last, int page, int maxBytes = 1024 * 1024)
    {
        var all = new List<LogEntry>();
        var next = first;
        while (next <= last)
        {
            var got = log.Read(next, page, maxBytes);
            Assert.True(got.Length > 0, $"reading from {next}: expected entries through {last}, got none");
            all.AddRange(got);
            next += got.Length;
        }

        return all;
    }

    [Fact]
    public async Task A_reader_far_behind_gets_its_entries_from_disk()
    {
        // 32 KiB segments hold 474 records each: 5000 entries are 11 segments, the sparse index has 2 offsets a segment.
        await using var log = Open(segmentSize: 32 * 1024);
        var entries = await WriteAsync(log, 1, 5000);
        Assert.Equal(11, log.Stats.SegmentCount);

        Entries.AssertSame(entries, ReadAll(log, 1, 5000, page: 777));

        // From anywhere: inside a sparse interval, on a segment boundary, the very last entry.
        foreach (var from in new long[] { 2, 255, 256, 257, 475, 476, 1234, 4999, 5000 })
        {
            var got = log.Read(from, 3, 1024 * 1024);
            Entries.AssertSame(entries[(int)(from - 1)..(int)Math.Min(from + 2, 5000)], got);
        }

        // Past the end: nothing, not an error.
        Assert.Empty(log.Read(5001, 10, 1024));
        Assert.Empty(log.Read(9999, 10, 1024));
    }

    [Fact]
    public async Task Read_is_bounded_by_count_and_bytes_but_always_returns_one_entry()
    {
        await using var log = Open(segmentSize: 4096);
        var entries = await WriteAsync(log, 1, 200);

        Entries.AssertSame(entries[9..14], log.Read(10, 5, 1024 * 1024));
        Entries.AssertSame(entries[9..12], log.Read(10, 100, 3 * RecordSize));
        Entries.AssertSame(entries[9..10], log.Read(10, 100, 1));

        // Count and bytes stop a read that would cross many segments (59 records each).
        Assert.Equal(150, log.Read(1, 150, 1024 * 1024).Length);
    }

    [Fact]
    public async Task Segments_open_or_sealed_keep_a_sparse_index_not_an_offset_per_entry()
    {
        long total;
        await using (var log = Open(segmentSize: 64 * 1024))
        {
            await WriteAsync(log, 1, 3000); // 949 records a segment: 4 segments, the last one open
            var segments = log.SegmentMemory();
            Assert.Equal(4, segments.Count);
            foreach (var (first, count, sparse) in segments)
            {
                Assert.Equal((int)((count + Segment.SparseEvery - 1) / Segment.SparseEvery), sparse);
                Assert.True(sparse <= 4, $"segment {first}: {sparse} sparse offsets for {count} entries");
            }

            total = segments.Sum(s => s.Count);
        }

        Assert.Equal(3000, total);

        // After a restart from the tail, old segments hold nothing until a read needs them.
        await using var reopened = Open(segmentSize: 64 * 1024, recoverFrom: 2900);
        var after = reopened.SegmentMemory();
        Assert.All(after.Take(3), s => Assert.Null(s.Sparse));
        Assert.Equal(949, after[0].Count);

        Assert.Single(reopened.Read(1000, 1, 1024));
        Assert.Equal(4, reopened.SegmentMemory()[1].Sparse); // indexed by that read: 949 entries, 4 offsets
    }

    [Fact]
    public async Task Truncation_inside_the_open_segment_cuts_where_its_sparse_index_and_the_records_say()
    {
        // The open segment keeps one offset every 256 records, so a cut is found by reading forward from the one
        // before it. Cuts on, just after and just before those offsets, and at the second record: a wrong cut would
        // read back the wrong entries, or leave a torn record that the reopen below refuses.
        var expected = new List<LogEntry>();
        await using (var log = Open(segmentSize: 64 * 1024 * 1024))
        {
            expected.AddRange(await WriteAsync(log, 1, 2000));
            foreach (var (from, epoch) in new[] { (1537L, 2L), (258L, 3L), (257L, 4L), (513L, 5L), (2L, 6L) })
            {
                log.Truncate(from);
                expected.RemoveRange((int)from - 1, expected.Count - ((int)from - 1));
                expected.AddRange(await WriteAsync(log, from, from + 300, epoch));

                var segment = Assert.Single(log.SegmentMemory());
                Assert.Equal(expected.Count, segment.Count);
                Assert.Equal((expected.Count + Segment.SparseEvery - 1) / Segment.SparseEvery, segment.Sparse);
                Entries.AssertSame(expected, ReadAll(log, 1, expected.Count, page: 97));
            }
        }

        await using var reopened = Open(segmentSize: 64 * 1024 * 1024);
        Entries.AssertSame(expected, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Truncation_into_a_sealed_segment_recovery_skipped_indexes_it_and_it_takes_appends_again()
    {
        // 949 records a segment: 1..949, 950..1898, 1899..2847, 2848..3000.
        var expected = new List<LogEntry>();
        await using (var log = Open(segmentSize: 64 * 1024))
        {
            expected.AddRange(await WriteAsync(log, 1, 3000));
        }

        // Restarted from the tail, the older segments have no index at all; the cut inside the second one needs it.
        await using (var log = Open(segmentSize: 64 * 1024, recoverFrom: 2900))
        {
            Assert.Null(log.SegmentMemory()[1].Sparse);
            log.Truncate(1500);
            expected.RemoveRange(1499, expected.Count - 1499);
            expected.AddRange(await WriteAsync(log, 1500, 1600, epoch: 2));
            Assert.Equal(2, log.SegmentMemory().Count);
            Entries.AssertSame(expected, ReadAll(log, 1, 1600, page: 500));
        }

        // A cut exactly at a segment's end leaves the sealed segment before it whole, open again: it still needs an
        // index to take appends (the writer adds to it).
        await using (var log = Open(segmentSize: 64 * 1024))
        {
            expected.AddRange(await WriteAsync(log, 1601, 3000, epoch: 2));
        }

        await using (var log = Open(segmentSize: 64 * 1024, recoverFrom: 2900))
        {
            Assert.Null(log.SegmentMemory()[1].Sparse);
            log.Truncate(1899);
            expected.RemoveRange(1898, expected.Count - 1898);
            expected.AddRange(await WriteAsync(log, 1899, 2100, epoch: 3));
            Assert.Equal(3, log.SegmentMemory().Count);
        }

        await using var reopened = Open(segmentSize: 64 * 1024);
        Entries.AssertSame(expected, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Open_from_an_index_returns_only_the_tail_and_does_not_read_older_segments()
    {
        // 2 KiB segments hold 29 records: 2000 entries are 69 segments.
        LogEntry[] entries;
        await using (var log = Open(segmentSize: 2048))
        {
            entries = await WriteAsync(log, 1, 2000);
        }

        // Damage the middle of the second segment (entries 30..58): full recovery refuses the log...
        var second = _folder.File(_folder.Segments()[1]);
        Assert.EndsWith("00000000000000000030.v2.log", second, StringComparison.Ordinal);
        var bytes = await File.ReadAllBytesAsync(second, TestContext.Current.CancellationToken);
        bytes[(RecordSize * 10) + 30] ^= 0xFF; // inside entry 40's record
        await File.WriteAllBytesAsync(second, bytes, TestContext.Current.CancellationToken);
        var refused = Assert.Throws<StorageException>(() => Open(segmentSize: 2048));
        Assert.Contains("00000000000000000030.v2.log", refused.Message, StringComparison.Ordinal);

        // ...but recovery from the tail never opens that file.
        await using var tail = Open(segmentSize: 2048, recoverFrom: 1500);
        Entries.AssertSame(entries[1499..], tail.RecoveredEntries);
        Assert.Equal(1, tail.FirstIndex);
        Assert.Equal(2000, tail.LastIndex);

        // The damage shows when that range is read, with where it is.
        var damaged = Assert.Throws<StorageException>(() => tail.Read(35, 10, 1024 * 1024));
        Assert.Contains("00000000000000000030.v2.log", damaged.Message, StringComparison.Ordinal);
        Assert.Contains($"byte {RecordSize * 10}", damaged.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', damaged.Message);

        // Other old segments read fine; the damaged one cannot be indexed, so every read in it is refused.
        Entries.AssertSame(entries[..29], tail.Read(1, 29, 1024 * 1024));
        Entries.AssertSame(entries[100..200], ReadAll(tail, 101, 200, page: 50));
        Assert.Throws<StorageException>(() => tail.Read(30, 5, 1024 * 1024));

        // And the tail keeps growing normally.
        await WriteAsync(tail, 2001, 2010);
        Entries.AssertSame(Entries.Range(1995, 2010, commandSize: CommandSize), tail.Read(1995, 100, 1024 * 1024));
    }

    [Fact]
    public async Task RemoveBelow_deletes_whole_old_segments_and_the_log_restarts_from_the_first_left()
    {
        LogEntry[] entries;
        long first;
        await using (var log = Open(segmentSize: 2048))
        {
            entries = await WriteAsync(log, 1, 1000); // segments start at 1, 30, 59, ..., 494, 523, ...
            var before = _folder.Segments().Length;
            log.RemoveBelow(500);
            await Eventually.TrueAsync(() => log.FirstIndex > 1, "the writer to remove segments below 500");

            // Every entry of a removed segment is below 500; the segment holding 500 stays.
            first = log.FirstIndex;
            Assert.Equal(494, first);
            Assert.Equal(Segment.FileNameFor(494), _folder.Segments()[0]);
            Assert.Equal(before - 17, _folder.Segments().Length);
            Assert.Equal(17, log.Stats.RemovedSegments);
            Assert.Equal(494, log.Stats.FirstIndex);

            Entries.AssertSame(entries[493..], ReadAll(log, 494, 1000, page: 100));
            var below = Assert.Throws<ArgumentOutOfRangeException>(() => log.Read(100, 10, 1024));
            Assert.Contains("removed", below.Message, StringComparison.Ordinal);

            // The open segment is never removed, even when asked to go past the end.
            log.RemoveBelow(5000);
            await WriteAsync(log, 1001, 1001); // ordered after the removal
            Assert.Single(_folder.Segments());
            Assert.True(log.FirstIndex <= 1000);
            first = log.FirstIndex;
            entries = [.. entries, Entries.Make(1001, commandSize: CommandSize)];
        }

        // The first segment left is where the log starts after a restart.
        await using (var reopened = Open(segmentSize: 2048, recoverFrom: first))
        {
            Assert.Equal(first, reopened.FirstIndex);
            Assert.Equal(1001, reopened.LastIndex);
            Entries.AssertSame(entries[(int)(first - 1)..], reopened.RecoveredEntries);
            await WriteAsync(reopened, 1002, 1003);
        }

        // Asking for entries that were removed is refused: the snapshot that covered them is missing.
        var e = Assert.Throws<StorageException>(() => Open(segmentSize: 2048, recoverFrom: 1));
        Assert.Contains($"starts at index {first}", e.Message, StringComparison.Ordinal);
        Assert.Contains("snapshot", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_log_starts_at_the_index_recovery_was_asked_for_and_ResetTo_restarts_it()
    {
        await using (var log = Open(segmentSize: 2048, recoverFrom: 42))
        {
            Assert.Equal(42, log.FirstIndex);
            Assert.Equal(41, log.LastIndex);
            Assert.Throws<ArgumentException>(() => log.Append([Entries.Make(1)]));
            await WriteAsync(log, 42, 100);

            // A snapshot through 4999 was installed: the whole log goes and continues at 5000.
            log.ResetTo(5000);
            Assert.Equal(4999, log.LastIndex);
            await WriteAsync(log, 5000, 5100);
            Assert.Equal(5000, log.FirstIndex);
            Assert.Empty(log.Read(5101, 1, 1024));
        }

        Assert.Equal(Segment.FileNameFor(5000), _folder.Segments()[0]);
        await using var reopened = Open(segmentSize: 2048, recoverFrom: 5000);
        Entries.AssertSame(Entries.Range(5000, 5100, commandSize: CommandSize), reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Truncating_into_a_segment_recovery_only_listed_reads_its_offsets_back()
    {
        await using (var log = Open(segmentSize: 2048))
        {
            await WriteAsync(log, 1, 100); // segments 1, 30, 59, 88
        }

        await using (var log = Open(segmentSize: 2048, recoverFrom: 95))
        {
            Assert.Null(log.SegmentMemory()[1].Sparse);
            log.Truncate(40);
            await WriteAsync(log, 40, 45, epoch: 2);
            Assert.Equal([Segment.FileNameFor(1), Segment.FileNameFor(30)], _folder.Segments());
            Entries.AssertSame([.. Entries.Range(30, 39, commandSize: CommandSize), .. Entries.Range(40, 45, epoch: 2, commandSize: CommandSize)], log.Read(30, 100, 1024 * 1024));
        }

        await using var reopened = Open(segmentSize: 2048);
        Assert.Equal(45, reopened.LastIndex);
    }

    [Fact]
    public async Task Reads_on_other_threads_during_appends_truncations_and_removals_see_only_whole_written_entries()
    {
        // Small segments and two read handles: constant rollover, removal, handle eviction.
        await using var log = Open(segmentSize: 4096, readHandles: 2);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var reads = 0L;
        // Dedicated threads (LongRunning): busy readers on pool threads would starve the log's writer of the pool.
        var readers = Enumerable.Range(0, 2).Select(r => Task.Factory.StartNew(() =>
        {
            var random = new Random(r);
            while (!stop.IsCancellationRequested)
            {
                var first = log.FirstIndex;
                var last = log.Stats.LastIndex;
                if (last < first)
                {
                    continue;
                }

                var from = first + random.NextInt64(last - first + 1);
                LogEntry[] got;
                try
                {
                    got = log.Read(from, 1 + random.Next(300), 1 + random.Next(64 * 1024));
                }
                catch (ArgumentOutOfRangeException)
                {
                    continue; // removed between FirstIndex and Read: allowed
                }

                for (var i = 0; i < got.Length; i++)
                {
                    // Contiguous from 'from', and each entry whole: what the writer appended at that index and epoch.
                    Assert.Equal(from + i, got[i].Index);
                    Entries.AssertSame([Entries.Make(got[i].Index, got[i].Epoch, CommandSize)], [got[i]]);
                }

                Interlocked.Add(ref reads, got.Length);
            }
        }, stop.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();

        var epoch = 1L;
        var next = 1L;
        try
        {
            for (var round = 0; round < 200; round++)
            {
                log.Append(Entries.Range(next, next + 99, epoch, CommandSize));
                next += 100;
                if (round % 10 == 9)
                {
                    // A new primary cut the unsynced end: the same indices come back in a later epoch.
                    epoch++;
                    next -= 30;
                    log.Truncate(next);
                }

                if (round % 5 == 4)
                {
                    log.RemoveBelow(Math.Max(1, next - 1000));
                }

                log.RequestSync(next - 1, round);
                await _synced.WaitForAsync(next - 1, round);
            }

            await Eventually.TrueAsync(() => Interlocked.Read(ref reads) > 10_000, "the readers to read 10,000 entries");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(readers);
        }

        Assert.Null(log.Fault);
        Assert.True(log.FirstIndex > 10_000, $"FirstIndex {log.FirstIndex}: removals should have kept the log short");
        Assert.True(log.OpenReadHandles <= 2, $"{log.OpenReadHandles} read handles open, capacity 2");
    }
}

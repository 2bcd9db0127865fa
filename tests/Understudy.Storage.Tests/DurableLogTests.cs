using Understudy.Protocol;

namespace Understudy.Storage.Tests;

public sealed partial class DurableLogTests : IDisposable
{
    private readonly TempFolder _folder = new();
    private readonly SyncRecorder _synced = new();

    public void Dispose() => _folder.Dispose();

    private DurableLog Open(FsyncPolicy policy = FsyncPolicy.Always, long segmentSize = DurableLogOptions.DefaultSegmentSize, Action? beforeFsync = null, Action<StorageException>? faulted = null) =>
        DurableLog.Open(_folder.Path, new DurableLogOptions
        {
            FsyncPolicy = policy,
            SegmentSize = segmentSize,
            Synced = _synced.OnSynced,
            Faulted = faulted,
            BeforeFsync = beforeFsync,
        });

    [Fact]
    public async Task Appended_entries_read_back_after_sync_and_reopen()
    {
        var entries = Entries.Range(1, 50, epoch: 2, commandSize: 92);
        entries[7] = entries[7] with { Kind = EntryKind.EpochStart, Command = Array.Empty<byte>() };
        await using (var log = Open())
        {
            Assert.Empty(log.RecoveredEntries);
            log.Append(entries.AsSpan(0, 20));
            log.Append(entries.AsSpan(20));
            log.RequestSync(50, 0);
            await _synced.WaitForAsync(50);
            Assert.Equal(50, log.Stats.DurableIndex);
            Assert.True(log.Stats.FsyncCount >= 1);
        }

        await using var reopened = Open();
        Entries.AssertSame(entries, reopened.RecoveredEntries);
        Assert.Equal(50, reopened.LastIndex);
    }

    [Fact]
    public async Task Batches_appended_back_to_back_are_written_exactly_as_given_though_the_log_reuses_its_copies()
    {
        // Append copies each batch into a pooled array that the writer gives back once written: reused too early, or
        // written past the batch's own length (a pooled array may be longer), entries would come back wrong or extra.
        var entries = Entries.Range(1, 20_000, commandSize: 24);
        var sizes = new[] { 8192, 1, 3000, 8191, 17, 599 };
        await using (var log = Open(FsyncPolicy.Never))
        {
            var at = 0;
            for (var i = 0; at < entries.Length; i++)
            {
                var n = Math.Min(sizes[i % sizes.Length], entries.Length - at);
                log.Append(entries.AsSpan(at, n));
                at += n;
            }

            Entries.AssertSame(entries[19_000..], await ReadWhenWrittenAsync(log, 19_001, 1000));
        }

        await using var reopened = Open();
        Entries.AssertSame(entries, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Released_recovery_leaves_the_log_readable_and_appendable_but_holds_no_recovered_tail_or_snapshot()
    {
        var entries = Entries.Range(1, 50, epoch: 2, commandSize: 92);
        await using (var log = Open())
        {
            log.Append(entries);
            log.RequestSync(50, 0);
            await _synced.WaitForAsync(50);
            log.Snapshots.Save(20, 2, new byte[] { 1, 2, 3 });
        }

        await using var reopened = DurableLog.OpenFromSnapshot(_folder.Path, new DurableLogOptions { Synced = _synced.OnSynced });
        Assert.Equal(20, reopened.RecoveredSnapshot?.Index);
        Entries.AssertSame(entries[20..], reopened.RecoveredEntries);

        reopened.ReleaseRecovered();

        // A server that kept these for its whole life pinned every recovered command (tens of MiB after a restart).
        Assert.Empty(reopened.RecoveredEntries);
        Assert.Null(reopened.RecoveredSnapshot);
        Entries.AssertSame(entries[..10], reopened.Read(1, 10, int.MaxValue));
        reopened.Append(Entries.Range(51, 51, epoch: 2, commandSize: 92));
        Assert.Equal(51, reopened.LastIndex);
    }

    [Fact]
    public async Task Missing_folder_is_created()
    {
        var nested = Path.Combine(_folder.Path, "a", "b");
        await using var log = DurableLog.Open(nested, new DurableLogOptions());
        Assert.True(Directory.Exists(nested));
        Assert.Equal(nested, log.Directory);
    }

    [Fact]
    public void A_file_on_the_data_folder_path_is_named_as_the_cause()
    {
        var file = Path.Combine(_folder.Path, "a-file");
        File.WriteAllText(file, "not a folder");
        var e = Assert.Throws<StorageException>(() => DurableLog.Open(Path.Combine(file, "sub"), new DurableLogOptions()));
        Assert.Contains($"'{file}' is a file, not a folder", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("vanished", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Synced_reports_the_latest_request_and_its_generation()
    {
        await using var log = Open();
        log.Append(Entries.Range(1, 3));
        log.RequestSync(3, 7);
        await _synced.WaitForAsync(3, generation: 7);
        Assert.Equal((3L, 7L), _synced.Calls[^1]);
    }

    [Fact]
    public async Task Segments_roll_over_at_the_configured_size_and_names_sort()
    {
        const long segmentSize = 1024;
        var entries = Entries.Range(1, 100, commandSize: 92); // 153 bytes a record: 6 to a segment
        await using (var log = Open(segmentSize: segmentSize))
        {
            log.Append(entries);
            log.RequestSync(100, 0);
            await _synced.WaitForAsync(100);
            Assert.Equal(17, log.Stats.SegmentCount);
        }

        var names = _folder.Segments();
        Assert.Equal(17, names.Length);
        Assert.Equal("00000000000000000001.v2.log", names[0]);
        Assert.Equal("00000000000000000007.v2.log", names[1]);
        Assert.All(names, n => Assert.True(new FileInfo(_folder.File(n)).Length <= segmentSize));

        await using var reopened = Open(segmentSize: segmentSize);
        Entries.AssertSame(entries, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task A_record_larger_than_a_segment_gets_a_segment_of_its_own()
    {
        var entries = new[] { Entries.Make(1), Entries.Make(2, commandSize: 4000), Entries.Make(3) };
        await using (var log = Open(segmentSize: 1024))
        {
            log.Append(entries);
            log.RequestSync(3, 0);
            await _synced.WaitForAsync(3);
        }

        Assert.Equal(["00000000000000000001.v2.log", "00000000000000000002.v2.log", "00000000000000000003.v2.log"], _folder.Segments());
        await using var reopened = Open(segmentSize: 1024);
        Entries.AssertSame(entries, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Truncate_across_a_segment_boundary_deletes_later_segments()
    {
        var entries = Entries.Range(1, 60, commandSize: 92); // segments start at 1, 7, 13, ..., 55
        await using (var log = Open(segmentSize: 1024))
        {
            log.Append(entries);
            log.Truncate(10); // inside the second segment: segments 13.. go, 7 keeps 7..9
            log.RequestSync(9, 1);
            await _synced.WaitForAsync(9, generation: 1);
            Assert.Equal(9, log.LastIndex);
            Assert.Equal(2, log.Stats.SegmentCount);
        }

        Assert.Equal(["00000000000000000001.v2.log", "00000000000000000007.v2.log"], _folder.Segments());
        await using var reopened = Open(segmentSize: 1024);
        Entries.AssertSame(entries[..9], reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Truncate_at_the_first_index_of_a_segment_deletes_that_segment()
    {
        await using (var log = Open(segmentSize: 1024))
        {
            log.Append(Entries.Range(1, 20, commandSize: 92));
            log.Truncate(13);
            log.Append(Entries.Range(13, 14, epoch: 2, commandSize: 92));
            log.RequestSync(14, 1);
            await _synced.WaitForAsync(14, generation: 1);
        }

        await using var reopened = Open(segmentSize: 1024);
        Entries.AssertSame([.. Entries.Range(1, 12, commandSize: 92), .. Entries.Range(13, 14, epoch: 2, commandSize: 92)], reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Truncate_then_append_then_reopen_gives_the_new_suffix()
    {
        var expected = Entries.Range(1, 14, epoch: 1).Concat(Entries.Range(15, 25, epoch: 2)).ToArray();
        await using (var log = Open())
        {
            log.Append(Entries.Range(1, 20, epoch: 1));
            log.RequestSync(20, 0);
            await _synced.WaitForAsync(20);
            log.Truncate(15);
            log.Append(Entries.Range(15, 25, epoch: 2));
            log.RequestSync(25, 1);
            await _synced.WaitForAsync(25, generation: 1);
        }

        await using var reopened = Open();
        Entries.AssertSame(expected, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Truncate_from_the_first_index_empties_the_log()
    {
        await using (var log = Open(segmentSize: 1024))
        {
            log.Append(Entries.Range(1, 30, commandSize: 92));
            log.Truncate(1);
            log.RequestSync(0, 1);
            await _synced.WaitForAsync(0, generation: 1);
            Assert.Equal(0, log.Stats.SegmentCount);
            log.Append(Entries.Range(1, 2, epoch: 3));
            log.RequestSync(2, 1);
            await _synced.WaitForAsync(2, generation: 1);
        }

        await using var reopened = Open(segmentSize: 1024);
        Entries.AssertSame(Entries.Range(1, 2, epoch: 3), reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Append_that_does_not_continue_the_log_is_refused()
    {
        await using var log = Open();
        log.Append(Entries.Range(1, 3));
        var gap = Assert.Throws<ArgumentException>(() => log.Append([Entries.Make(5)]));
        Assert.Contains("ends at index 3", gap.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => log.Append([Entries.Make(3)]));
        log.Truncate(2);
        log.Append([Entries.Make(2, epoch: 2)]);
        Assert.Equal(2, log.LastIndex);
    }

    [Fact]
    public async Task Requests_queued_behind_an_fsync_share_the_next_one()
    {
        using var firstFsyncEntered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var fsyncs = 0;
        await using var log = Open(beforeFsync: () =>
        {
            if (Interlocked.Increment(ref fsyncs) == 1)
            {
                firstFsyncEntered.Set();
                release.Wait(TimeSpan.FromSeconds(30));
            }
        });

        log.Append([Entries.Make(1)]);
        log.RequestSync(1, 0);
        Assert.True(firstFsyncEntered.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken), "the first fsync never started");

        // While that fsync is held open, 999 more appends and sync requests pile up.
        for (var i = 2; i <= 1000; i++)
        {
            log.Append([Entries.Make(i)]);
            log.RequestSync(i, 0);
        }

        release.Set();
        await _synced.WaitForAsync(1000);

        Assert.Equal([(1L, 0L), (1000L, 0L)], _synced.Calls);
        Assert.Equal(2, log.Stats.FsyncCount);
    }

    [Fact]
    public async Task Many_sync_requests_take_fewer_fsyncs_and_report_rising_indices()
    {
        const int count = 2000;
        await using (var log = Open())
        {
            for (var i = 1; i <= count; i++)
            {
                log.Append([Entries.Make(i)]);
                log.RequestSync(i, 0);
            }

            await _synced.WaitForAsync(count);
            var calls = _synced.Calls;
            Assert.True(log.Stats.FsyncCount < count, $"{log.Stats.FsyncCount} fsyncs for {count} requests");
            Assert.Equal(calls.Count, log.Stats.FsyncCount);
            for (var i = 1; i < calls.Count; i++)
            {
                Assert.True(calls[i].Through > calls[i - 1].Through, $"Synced went from {calls[i - 1].Through} to {calls[i].Through}");
            }
        }

        await using var reopened = Open();
        Assert.Equal(count, reopened.RecoveredEntries.Count);
    }

    [Fact]
    public async Task Batch_policy_reports_after_the_write_and_fsyncs_on_its_timer()
    {
        using var release = new ManualResetEventSlim();
        await using var log = DurableLog.Open(_folder.Path, new DurableLogOptions
        {
            FsyncPolicy = FsyncPolicy.Batch,
            BatchInterval = TimeSpan.FromMilliseconds(5),
            Synced = _synced.OnSynced,
            BeforeFsync = () => release.Wait(TimeSpan.FromSeconds(30)),
        });

        log.Append(Entries.Range(1, 10));
        log.RequestSync(10, 0);

        // Reported although every fsync is held back.
        await _synced.WaitForAsync(10);
        Assert.Equal(0, log.Stats.FsyncCount);
        Assert.Equal(10, log.Stats.LastIndex);

        release.Set();
        await Eventually.TrueAsync(() => log.Stats.FsyncCount >= 1 && log.Stats.DurableIndex == 10, "the timer's fsync");
    }

    [Fact]
    public async Task Never_policy_reports_without_any_fsync()
    {
        await using (var log = Open(FsyncPolicy.Never, segmentSize: 1024))
        {
            log.Append(Entries.Range(1, 40, commandSize: 92));
            log.Truncate(30);
            log.RequestSync(29, 0);
            await _synced.WaitForAsync(29);
            Assert.Equal(0, log.Stats.FsyncCount);
            Assert.Equal(29, log.Stats.DurableIndex);
        }

        await using var reopened = Open(FsyncPolicy.Never, segmentSize: 1024);
        Assert.Equal(29, reopened.RecoveredEntries.Count);
    }

    [Fact]
    public async Task Dispose_drains_the_queue_and_syncs()
    {
        var entries = Entries.Range(1, 500);
        var log = Open();
        foreach (var e in entries)
        {
            log.Append([e]);
        }

        await log.DisposeAsync();
        Assert.Equal(500, log.Stats.DurableIndex);
        Assert.Throws<ObjectDisposedException>(() => log.Append([Entries.Make(501)]));

        await using var reopened = Open();
        Entries.AssertSame(entries, reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Second_open_of_the_same_folder_is_refused_with_a_clear_message()
    {
        await using (var log = Open())
        {
            var e = Assert.Throws<StorageException>(() => Open());
            Assert.Contains(_folder.Path, e.Message, StringComparison.Ordinal);
            Assert.Contains("in use by another server", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', e.Message);
        }

        // Released on dispose.
        await using var again = Open();
    }

    [Fact]
    public async Task Stats_count_bytes_and_fsync_time()
    {
        await using var log = Open();
        log.Append(Entries.Range(1, 10, commandSize: 39)); // 100 bytes a record
        log.RequestSync(10, 0);
        await _synced.WaitForAsync(10);
        var stats = log.Stats;
        Assert.Equal(1000, stats.BytesWritten);
        Assert.Equal(1, stats.SegmentCount);
        Assert.Equal(10, stats.LastIndex);
        Assert.True(stats.TotalFsyncTime >= stats.LastFsyncTime);
        Assert.True(stats.LastFsyncTime > TimeSpan.Zero);
    }

    [Fact]
    public async Task Disk_full_faults_the_log_and_later_calls_fail()
    {
        await using var log = OpenOnFullDisk(out var faulted);

        log.Append([Entries.Make(1)]);
        log.RequestSync(1, 0);

        var fault = await faulted.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Contains("is full", fault.Message, StringComparison.Ordinal);
        Assert.Contains("free space", fault.Message, StringComparison.Ordinal);
        Assert.Same(fault, log.Fault);
        Assert.Same(fault, Assert.Throws<StorageException>(() => log.Append([Entries.Make(2)])));
        Assert.Same(fault, Assert.Throws<StorageException>(() => log.RequestSync(1, 0)));
        Assert.Empty(_synced.Calls);
    }

    /// <summary>
    /// A log (fsync never) whose first segment file is /dev/full: every write fails with ENOSPC, like a full disk; the
    /// task completes with the fault the log reports. Skips the test off Linux.
    /// </summary>
    private DurableLog OpenOnFullDisk(out Task<StorageException> faulted)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/dev/full is Linux's always-full device");
        File.CreateSymbolicLink(_folder.File("00000000000000000001.v2.log"), "/dev/full");
        var fault = new TaskCompletionSource<StorageException>(TaskCreationOptions.RunContinuationsAsynchronously);
        faulted = fault.Task;
        return Open(FsyncPolicy.Never, faulted: e => fault.TrySetResult(e));
    }

    /// <summary>Reads <paramref name="count"/> entries from <paramref name="from"/> once the writer has written them (deadline 10 s).</summary>
    private static async Task<LogEntry[]> ReadWhenWrittenAsync(DurableLog log, long from, int count)
    {
        LogEntry[] read = [];
        await Eventually.TrueAsync(() => (read = log.Read(from, count, int.MaxValue)).Length == count, $"entries {from}..{from + count - 1} written and readable");
        return read;
    }
}

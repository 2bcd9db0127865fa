using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Storage.Tests;

/// <summary>What a crash can leave on disk, and what recovery makes of it.</summary>
public sealed class RecoveryTests : IDisposable
{
    private const int CommandSize = 32; // 93-byte records (8 header + 53 fixed + 32)
    private const int RecordSize = LogRecord.HeaderSize + LogRecord.FixedPayloadSize + CommandSize;
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private DurableLog Open(ILogger? logger = null, long segmentSize = 1024) =>
        DurableLog.Open(_folder.Path, new DurableLogOptions { SegmentSize = segmentSize }, logger);

    /// <summary>Writes entries 1..count durably and closes the log.</summary>
    private async Task<LogEntry[]> WriteAsync(int count, long segmentSize = 1024)
    {
        var entries = Entries.Range(1, count, commandSize: CommandSize);
        await using var log = Open(segmentSize: segmentSize);
        log.Append(entries);
        return entries;
    }

    private string LastSegment() => _folder.File(_folder.Segments()[^1]);

    [Fact]
    public void A_folder_of_format_1_segments_is_refused_with_one_line_naming_the_folder_and_what_to_do()
    {
        // Format 1 (before entries carried log time) named its segments 20 digits + ".log"; its records would
        // parse as format 2 into garbage, so the folder is refused before any record is read.
        File.WriteAllBytes(_folder.File("00000000000000000001.log"), new byte[200]);

        var refused = Assert.Throws<StorageException>(() => Open());

        Assert.DoesNotContain('\n', refused.Message);
        Assert.Contains(_folder.Path, refused.Message, StringComparison.Ordinal);
        Assert.Contains("format 1", refused.Message, StringComparison.Ordinal);
        Assert.Contains("start this server with an empty one", refused.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(_folder.File("00000000000000000001.log")), "the old segment must be left as it was");
    }

    [Fact]
    public async Task Log_time_survives_a_restart()
    {
        var entries = await WriteAsync(5);
        await using var reopened = Open();

        Assert.Equal(entries.Select(e => e.LogTimeMs), reopened.RecoveredEntries.Select(e => e.LogTimeMs));
        Assert.All(reopened.RecoveredEntries, e => Assert.NotEqual(0, e.LogTimeMs));
    }

    [Fact]
    public async Task Torn_tail_is_truncated_on_recovery()
    {
        // 25 entries in 1024-byte segments (11 records each): the last segment holds entries 23..25.
        var entries = await WriteAsync(25);
        var path = LastSegment();
        var whole = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        Assert.Equal(3 * RecordSize, whole.Length);

        // A crash can cut the last write at any byte: every cut must recover to the entries before it.
        for (var cut = whole.Length - RecordSize; cut < whole.Length; cut++)
        {
            await File.WriteAllBytesAsync(path, whole[..cut], TestContext.Current.CancellationToken);
            var logger = new ListLogger();
            await using (var log = Open(logger))
            {
                Entries.AssertSame(entries[..24], log.RecoveredEntries);
            }

            Assert.Equal(whole.Length - RecordSize, new FileInfo(path).Length);
            if (cut > whole.Length - RecordSize)
            {
                var line = Assert.Single(logger.Lines, l => l.Id.Id == 3001);
                Assert.Equal(LogLevel.Warning, line.Level);
                Assert.Contains($"{cut - (whole.Length - RecordSize)} bytes", line.Message, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task A_frame_of_entries_appended_at_once_and_torn_in_the_middle_recovers_to_the_last_whole_entry()
    {
        // A catching-up backup appends a whole frame (thousands of entries) in one call, written in large chunks:
        // a crash can cut that write anywhere inside the frame, and recovery keeps every whole entry before the cut.
        var entries = Entries.Range(1, 8192, commandSize: CommandSize);
        await using (var log = Open(segmentSize: DurableLogOptions.DefaultSegmentSize))
        {
            log.Append(entries);
        }

        var path = LastSegment();
        var whole = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        Assert.Equal(entries.Length * RecordSize, whole.Length);
        foreach (var cut in new[] { (5000 * RecordSize) + 1, (5000 * RecordSize) + RecordSize - 1, (6144 * RecordSize) + LogRecord.HeaderSize })
        {
            await File.WriteAllBytesAsync(path, whole[..cut], TestContext.Current.CancellationToken);
            var kept = cut / RecordSize;
            await using (var log = Open(segmentSize: DurableLogOptions.DefaultSegmentSize))
            {
                Entries.AssertSame(entries[..kept], log.RecoveredEntries);
                Assert.Equal(kept, log.LastIndex);
            }

            Assert.Equal(kept * RecordSize, new FileInfo(path).Length);
        }
    }

    [Fact]
    public async Task Garbage_or_zeros_after_a_cut_are_truncated_too()
    {
        var entries = await WriteAsync(5, segmentSize: DurableLogOptions.DefaultSegmentSize);
        var path = LastSegment();
        var whole = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        var lastStart = whole.Length - RecordSize;
        var random = new Random(7);

        // Some file systems show a torn write as zeros or stale bytes rather than a shorter file.
        for (var sample = 0; sample < 40; sample++)
        {
            var cut = lastStart + random.Next(RecordSize);
            var torn = whole.ToArray();
            if (sample % 2 == 0)
            {
                Array.Clear(torn, cut, torn.Length - cut);
            }
            else
            {
                random.NextBytes(torn.AsSpan(cut));
            }

            if (torn.AsSpan().SequenceEqual(whole))
            {
                continue;
            }

            await File.WriteAllBytesAsync(path, torn, TestContext.Current.CancellationToken);
            await using var log = Open(segmentSize: DurableLogOptions.DefaultSegmentSize);
            Entries.AssertSame(entries[..4], log.RecoveredEntries);
        }
    }

    [Fact]
    public async Task A_log_recovered_from_a_torn_tail_takes_new_appends()
    {
        await WriteAsync(3, segmentSize: DurableLogOptions.DefaultSegmentSize);
        var path = LastSegment();
        var whole = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        await File.WriteAllBytesAsync(path, whole[..^10], TestContext.Current.CancellationToken);

        var synced = new SyncRecorder();
        var options = new DurableLogOptions { Synced = synced.OnSynced };
        await using (var log = DurableLog.Open(_folder.Path, options))
        {
            Assert.Equal(2, log.LastIndex);
            log.Append([Entries.Make(3, epoch: 2)]);
            log.RequestSync(3, 0);
            await synced.WaitForAsync(3);
        }

        await using var reopened = DurableLog.Open(_folder.Path, options);
        Entries.AssertSame([.. Entries.Range(1, 2, commandSize: CommandSize), Entries.Make(3, epoch: 2)], reopened.RecoveredEntries);
    }

    [Fact]
    public async Task Corrupt_record_in_the_middle_is_refused()
    {
        await WriteAsync(25);
        var path = LastSegment(); // entries 23..25
        var bytes = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        bytes[RecordSize + 30] ^= 0x01; // inside entry 24, with entry 25 valid after it
        await File.WriteAllBytesAsync(path, bytes, TestContext.Current.CancellationToken);

        var e = Assert.Throws<StorageException>(() => Open());
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains($"damaged at byte {RecordSize}", e.Message, StringComparison.Ordinal);
        Assert.Contains("valid record follows", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);

        // Nothing was dropped, and the folder is not left locked.
        Assert.Equal(bytes, await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken));
        Assert.Throws<StorageException>(() => Open());
    }

    [Fact]
    public async Task Corrupt_record_in_an_older_segment_is_refused_even_at_its_end()
    {
        await WriteAsync(25);
        var older = _folder.File(_folder.Segments()[0]); // entries 1..11
        var bytes = await File.ReadAllBytesAsync(older, TestContext.Current.CancellationToken);
        bytes[^1] ^= 0x80; // the last byte of entry 11
        await File.WriteAllBytesAsync(older, bytes, TestContext.Current.CancellationToken);

        var e = Assert.Throws<StorageException>(() => Open());
        Assert.Contains("is not the last segment", e.Message, StringComparison.Ordinal);
        Assert.Contains(older, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_cut_older_segment_is_refused()
    {
        await WriteAsync(25);
        var older = _folder.File(_folder.Segments()[0]);
        var bytes = await File.ReadAllBytesAsync(older, TestContext.Current.CancellationToken);
        await File.WriteAllBytesAsync(older, bytes[..^5], TestContext.Current.CancellationToken);

        Assert.Throws<StorageException>(() => Open());
    }

    [Fact]
    public async Task Missing_segment_is_refused()
    {
        await WriteAsync(25);
        File.Delete(_folder.File(_folder.Segments()[1])); // entries 12..22

        var e = Assert.Throws<StorageException>(() => Open());
        Assert.Contains("starts at index 23", e.Message, StringComparison.Ordinal);
        Assert.Contains("ends at index 11", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Record_out_of_order_is_refused()
    {
        await WriteAsync(25);
        var segments = _folder.Segments();
        File.Delete(_folder.File(segments[1]));
        File.Move(_folder.File(segments[2]), _folder.File(segments[1])); // entries 23..25 where 12.. belong

        var e = Assert.Throws<StorageException>(() => Open());
        Assert.Contains("holds index 23", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Files_that_are_not_segments_are_left_alone()
    {
        var entries = await WriteAsync(3);
        await File.WriteAllTextAsync(_folder.File("notes.log"), "operator notes", TestContext.Current.CancellationToken);

        await using var log = Open();
        Entries.AssertSame(entries, log.RecoveredEntries);
        Assert.True(File.Exists(_folder.File("notes.log")));
    }
}

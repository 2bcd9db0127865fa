using Understudy.Protocol;

namespace Understudy.Storage.Tests;

/// <summary>
/// <see cref="DurableLog.AppendAndSync"/>: written on the caller's thread only where a sync report may follow the write
/// at once (fsync never), never ahead of queued work, and reported as durable only once the bytes are in the file.
/// </summary>
public sealed partial class DurableLogTests
{
    [Fact]
    public async Task AppendAndSync_with_fsync_never_the_entries_are_written_before_it_returns_and_no_report_follows()
    {
        var entries = Entries.Range(1, 30, epoch: 1, commandSize: 40);
        await using (var log = Open(FsyncPolicy.Never))
        {
            Assert.True(log.AppendAndSync(entries, 30, generation: 3, out var synced), "with nothing queued and the writer idle, written at once");
            Assert.Equal(30, synced);
            Assert.Equal(30, log.Stats.DurableIndex);
            Assert.Equal(30, log.LastIndex);

            // Readable at once: the bytes are in the file, not in a queue.
            Entries.AssertSame(entries, log.Read(1, 30, int.MaxValue));

            // A later queued request is still answered by the writer, after what was written here.
            log.Append([Entries.Make(31)]);
            log.RequestSync(31, 3);
            await _synced.WaitForAsync(31, generation: 3);
            Assert.DoesNotContain(_synced.Calls, c => c.Through == 30);
        }

        await using var reopened = Open(FsyncPolicy.Never);
        Assert.Equal(31, reopened.LastIndex);
    }

    [Fact]
    public async Task AppendAndSync_with_fsync_always_it_queues_and_the_writer_reports_after_the_fsync()
    {
        await using var log = Open(FsyncPolicy.Always);
        Assert.False(log.AppendAndSync(Entries.Range(1, 5), 5, generation: 0, out _), "an fsync is never done on the caller's thread");
        await _synced.WaitForAsync(5);
        Assert.True(log.Stats.FsyncCount >= 1, $"reported after an fsync; fsyncs: {log.Stats.FsyncCount}");
        Assert.Equal(5, log.Stats.DurableIndex);
    }

    [Fact]
    public async Task AppendAndSync_never_overtakes_queued_work()
    {
        await using var log = Open(FsyncPolicy.Never);
        var expected = new List<LogEntry>();
        long last = 0;
        for (var round = 0; round < 50; round++)
        {
            // Queued for the writer: five entries, then a truncation of the last three. AppendAndSync right behind them
            // must land after both, whether the writer has got to them yet or not: written first, the truncation would
            // remove its entries.
            log.Append(Entries.Range(last + 1, last + 5, epoch: 1));
            log.Truncate(last + 3);
            var replacement = Entries.Range(last + 3, last + 5, epoch: 2);
            if (!log.AppendAndSync(replacement, last + 5, round, out var synced))
            {
                await _synced.WaitForAsync(last + 5, generation: round);
            }
            else
            {
                // Reported durable at once: so the entries must already be readable from the file, not merely queued.
                Assert.Equal(last + 5, synced);
                Assert.True(log.Stats.DurableIndex >= last + 5, $"durable index {log.Stats.DurableIndex} after a report through {last + 5}");
                Entries.AssertSame(replacement, log.Read(last + 3, 3, int.MaxValue));
            }

            expected.AddRange(Entries.Range(last + 1, last + 2, epoch: 1));
            expected.AddRange(replacement);
            last += 5;
        }

        Entries.AssertSame(expected, log.Read(1, (int)last, int.MaxValue));
        Assert.Equal(last, log.LastIndex);
    }

    [Fact]
    public async Task AppendAndSync_disk_error_faults_the_log_and_is_thrown()
    {
        await using var log = OpenOnFullDisk(out var faulted);

        var thrown = Assert.Throws<StorageException>(() => log.AppendAndSync([Entries.Make(1)], 1, 0, out _));
        Assert.Contains("is full", thrown.Message, StringComparison.Ordinal);
        Assert.Same(thrown, await faulted.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Same(thrown, Assert.Throws<StorageException>(() => log.AppendAndSync([Entries.Make(1)], 1, 0, out _)));
        Assert.Empty(_synced.Calls);
    }
}

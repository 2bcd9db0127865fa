namespace Understudy.Storage.Tests;

/// <summary>
/// The early writeback (<see cref="DurableLogOptions.WritebackBytes"/>): started once enough unsynced bytes are written,
/// never with <see cref="FsyncPolicy.Never"/> or when turned off, and it changes nothing that is read back.
/// </summary>
public sealed class WritebackTests : IDisposable
{
    private readonly TempFolder _folder = new();
    private readonly SyncRecorder _synced = new();

    public void Dispose() => _folder.Dispose();

    private DurableLog Open(FsyncPolicy policy, int writebackBytes, long segmentSize = DurableLogOptions.DefaultSegmentSize) =>
        DurableLog.Open(_folder.Path, new DurableLogOptions
        {
            FsyncPolicy = policy,
            WritebackBytes = writebackBytes,
            SegmentSize = segmentSize,
            Synced = _synced.OnSynced,
        });

    /// <summary>Appends 2,000 entries of about 1 KiB in runs of 100, one sync request at the end: about 2 MiB between fsyncs.</summary>
    private async Task WriteRunsAsync(DurableLog log)
    {
        var entries = Entries.Range(1, 2000, epoch: 1, commandSize: 1000);
        for (var i = 0; i < entries.Length; i += 100)
        {
            log.Append(entries.AsSpan(i, 100));
        }

        log.RequestSync(2000, 0);
        await _synced.WaitForAsync(2000);
    }

    [Fact]
    public async Task A_long_run_between_fsyncs_is_handed_to_the_disk_in_pieces_and_reads_back_whole()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "sync_file_range is Linux's");
        await using (var log = Open(FsyncPolicy.Always, writebackBytes: 64 * 1024))
        {
            await WriteRunsAsync(log);

            // ~2 MiB written in chunks of at most 1 MiB, each past the 64 KiB threshold: at least two starts.
            Assert.True(log.Stats.WritebackStarts >= 2, $"expected at least 2 writeback starts for ~2 MiB at 64 KiB, got {log.Stats.WritebackStarts}");
        }

        await using var reopened = Open(FsyncPolicy.Always, writebackBytes: 64 * 1024);
        Assert.Equal(2000, reopened.LastIndex);
        var read = reopened.Read(1, 2000, int.MaxValue);
        Assert.Equal(2000, read.Length);
        Assert.Equal(Entries.Range(1, 2000, epoch: 1, commandSize: 1000).Select(e => e.Command.ToArray()), read.Select(e => e.Command.ToArray()));
    }

    [Fact]
    public async Task Segments_rolled_over_keep_the_count_per_segment()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "sync_file_range is Linux's");

        // 256 KiB segments: a run crosses several; each new segment starts counting from zero (its bytes only).
        await using var log = Open(FsyncPolicy.Batch, writebackBytes: 64 * 1024, segmentSize: 256 * 1024);
        await WriteRunsAsync(log);
        Assert.True(log.Stats.SegmentCount >= 8, $"expected the run to cross segments, got {log.Stats.SegmentCount}");
        Assert.True(log.Stats.WritebackStarts >= 6, $"expected writeback starts in the rolled segments, got {log.Stats.WritebackStarts}");
        Assert.Equal(2000, log.Read(1, 2000, int.MaxValue).Length);
    }

    [Theory]
    [InlineData(FsyncPolicy.Never, 64 * 1024)]
    [InlineData(FsyncPolicy.Always, 0)]
    public async Task Never_started_without_fsyncs_or_when_off(FsyncPolicy policy, int writebackBytes)
    {
        await using var log = Open(policy, writebackBytes);
        await WriteRunsAsync(log);
        Assert.Equal(0, log.Stats.WritebackStarts);
    }

    [Fact]
    public void A_negative_threshold_is_refused_at_open()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Open(FsyncPolicy.Always, writebackBytes: -1));
        Assert.Contains("writeback", e.Message, StringComparison.Ordinal);
    }
}

using Understudy.Storage.Snapshots;

namespace Understudy.Storage.Tests;

/// <summary>
/// Installing a snapshot received from the primary (<see cref="DurableLog.InstallSnapshot"/>): after a crash at any
/// step a restart has either the old log and snapshots or the new snapshot with the log written after it, never a
/// mix, and a server that was still receiving the entries the snapshot's state reads (backfilling) keeps them.
/// </summary>
public sealed class SnapshotInstallTests : IDisposable
{
    private const int CommandSize = 8;

    // The primary's snapshot at 1000 (epoch 3); the message store's state in it still reads from 801, so the log
    // resumes after 800, an entry of epoch 2.
    private const long Installed = 1000;
    private const long InstalledEpoch = 3;
    private const long ResumeAt = 801;
    private const long EpochBefore = 2;

    private readonly TempFolder _folder = new();
    private readonly SyncRecorder _synced = new();
    private readonly byte[] _state = State(50_000, 5);
    private long _generation;

    public void Dispose() => _folder.Dispose();

    private string Data => _folder.File("data");

    private string SnapshotsPath => Path.Combine(Data, DurableLog.SnapshotFolderName);

    private DurableLog Open() =>
        DurableLog.OpenFromSnapshot(Data, new DurableLogOptions { SegmentSize = 2048, FsyncPolicy = FsyncPolicy.Always, Synced = _synced.OnSynced });

    private static byte[] State(int size, int seed)
    {
        var state = new byte[size];
        new Random(seed).NextBytes(state);
        return state;
    }

    private async Task WriteAsync(DurableLog log, long first, long last, long epoch)
    {
        log.Append(Entries.Range(first, last, epoch, CommandSize));
        var generation = ++_generation;
        log.RequestSync(last, generation);
        await _synced.WaitForAsync(last, generation, seconds: 60);
    }

    /// <summary>The old life of the backup: entries 1..300 of epoch 1 and its own snapshot at 100.</summary>
    private async Task WriteOldLifeAsync()
    {
        await using var log = Open();
        await WriteAsync(log, 1, 300, epoch: 1);
        log.Snapshots.Save(100, 1, State(1000, 1));
    }

    /// <summary>Receives the primary's snapshot whole into <paramref name="store"/> and verifies it (not yet published).</summary>
    private SnapshotInstaller Receive(SnapshotStore store)
    {
        var sender = new SnapshotStore(_folder.File("primary-snapshots"));
        sender.Save(Installed, InstalledEpoch, _state);
        using var source = sender.OpenRead(Installed);
        var installer = store.BeginInstall(Installed, InstalledEpoch, source.Length);
        var chunk = new byte[8 * 1024];
        while (installer.ReceivedLength < installer.TotalLength)
        {
            var n = source.Read(installer.ReceivedLength, chunk);
            installer.Write(installer.ReceivedLength, chunk.AsSpan(0, n));
        }

        installer.Verify();
        return installer;
    }

    private string[] SegmentFiles() =>
        [.. Directory.GetFiles(Data, "*" + Segment.Extension).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];

    [Fact]
    public async Task A_restart_while_backfilling_keeps_the_snapshot_and_the_entries_received_after_it()
    {
        await WriteOldLifeAsync();
        await using (var log = Open())
        {
            log.InstallSnapshot(Receive(log.Snapshots), ResumeAt, EpochBefore);
            Assert.Equal(ResumeAt - 1, log.LastIndex);

            // The primary sends the retained entries after the resume point; the process dies before they reach 1000.
            await WriteAsync(log, ResumeAt, 900, epoch: EpochBefore);
        }

        await using var reopened = Open();
        Assert.Equal((Installed, InstalledEpoch), (reopened.RecoveredSnapshot?.Index, reopened.RecoveredSnapshot?.Epoch));
        Assert.Equal(_state, reopened.RecoveredSnapshot!.State.ToArray());
        Assert.Equal(new LogStart(Installed, ResumeAt, EpochBefore), reopened.RecoveredLogStart);
        Assert.Equal(ResumeAt, reopened.RecoveredFrom);
        Entries.AssertSame(Entries.Range(ResumeAt, 900, EpochBefore, CommandSize), reopened.RecoveredEntries);
        Assert.Equal(ResumeAt, reopened.FirstIndex);
        Assert.Equal(900, reopened.LastIndex);

        // Backfilling goes on where it stopped, past the snapshot.
        await WriteAsync(reopened, 901, 1100, epoch: InstalledEpoch);
        Assert.Equal(ResumeAt, reopened.Read(ResumeAt, 1, 1024)[0].Index);
    }

    [Fact]
    public async Task A_sync_reported_after_an_install_finds_the_log_start_the_old_log_gone_and_the_snapshot_published()
    {
        await WriteOldLifeAsync();
        await using var log = Open();
        Assert.Contains(Segment.FileNameFor(1), SegmentFiles());
        log.InstallSnapshot(Receive(log.Snapshots), ResumeAt, EpochBefore);
        await WriteAsync(log, ResumeAt, 810, epoch: EpochBefore);

        // What a restart would find now, while this process still runs: nothing the sync covers waits for a later sync.
        Assert.Equal(new LogStart(Installed, ResumeAt, EpochBefore), LogStartFile.Read(Data));
        Assert.Equal([Segment.FileNameFor(ResumeAt)], SegmentFiles());
        Assert.Equal(Installed, new SnapshotStore(SnapshotsPath).Indices()[^1]);
        Assert.Empty(Directory.GetFiles(SnapshotsPath, "*" + SnapshotFile.PartialSuffix));
    }

    [Fact]
    public async Task A_crash_after_the_log_start_was_written_but_before_the_snapshot_was_renamed_finishes_the_install_at_open()
    {
        await WriteOldLifeAsync();

        // The disk as the writer left it when the process died: the received file verified (fsynced) under its partial
        // name, the log start written, one old segment deleted, the others not yet, the snapshot not renamed.
        var store = new SnapshotStore(SnapshotsPath);
        Receive(store).Dispose();
        LogStartFile.Write(Data, new LogStart(Installed, ResumeAt, EpochBefore));
        File.Delete(Path.Combine(Data, SegmentFiles()[^1]));
        Assert.NotEmpty(SegmentFiles());

        await using var reopened = Open();
        Assert.Equal(Installed, reopened.RecoveredSnapshot?.Index);
        Assert.Equal(_state, reopened.RecoveredSnapshot!.State.ToArray());
        Assert.Equal(new LogStart(Installed, ResumeAt, EpochBefore), reopened.RecoveredLogStart);
        Assert.Empty(reopened.RecoveredEntries);
        Assert.Equal(ResumeAt - 1, reopened.LastIndex);
        Assert.Empty(SegmentFiles());
        Assert.Empty(Directory.GetFiles(SnapshotsPath, "*" + SnapshotFile.PartialSuffix));
        await WriteAsync(reopened, ResumeAt, 850, epoch: EpochBefore);
    }

    [Fact]
    public async Task A_crash_before_the_log_start_was_written_leaves_the_old_log_and_snapshot_and_the_received_file_to_resume()
    {
        await WriteOldLifeAsync();
        var store = new SnapshotStore(SnapshotsPath);
        Receive(store).Dispose();

        await using var reopened = Open();
        Assert.Equal(100, reopened.RecoveredSnapshot?.Index);
        Assert.Null(reopened.RecoveredLogStart);
        Entries.AssertSame(Entries.Range(101, 300, 1, CommandSize), reopened.RecoveredEntries);
        Assert.Single(Directory.GetFiles(SnapshotsPath, "*" + SnapshotFile.PartialSuffix));
    }

    [Fact]
    public async Task A_snapshot_taken_after_the_install_supersedes_the_log_start()
    {
        await WriteOldLifeAsync();
        await using (var log = Open())
        {
            log.InstallSnapshot(Receive(log.Snapshots), ResumeAt, EpochBefore);
            await WriteAsync(log, ResumeAt, 1100, epoch: EpochBefore);
            log.Snapshots.Save(1050, EpochBefore, State(1000, 9));
        }

        await using var reopened = Open();
        Assert.Equal(1050, reopened.RecoveredSnapshot?.Index);
        Assert.Null(reopened.RecoveredLogStart);
        Assert.Equal(1051, reopened.RecoveredFrom);
        Entries.AssertSame(Entries.Range(1051, 1100, EpochBefore, CommandSize), reopened.RecoveredEntries);
    }

    [Fact]
    public async Task A_damaged_log_start_file_is_refused_with_what_to_do()
    {
        await WriteOldLifeAsync();
        LogStartFile.Write(Data, new LogStart(Installed, ResumeAt, EpochBefore));
        var path = Path.Combine(Data, LogStartFile.FileName);
        await File.WriteAllTextAsync(path, (await File.ReadAllTextAsync(path, TestContext.Current.CancellationToken)).Replace("next=801", "next=802", StringComparison.Ordinal), TestContext.Current.CancellationToken);

        var e = Assert.Throws<StorageException>(Open);
        Assert.Contains("checksum", e.Message, StringComparison.Ordinal);
        Assert.Contains(LogStartFile.FileName, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_install_needs_a_verified_file_and_a_log_start_no_later_than_after_the_snapshot()
    {
        await using var log = Open();
        var sender = new SnapshotStore(_folder.File("primary-snapshots"));
        sender.Save(Installed, InstalledEpoch, _state);
        using var unverified = log.Snapshots.BeginInstall(Installed, InstalledEpoch, sender.OpenRead(Installed).Length);
        Assert.Throws<ArgumentException>(() => log.InstallSnapshot(unverified, ResumeAt, EpochBefore));
        unverified.Dispose();
        using var verified = Receive(log.Snapshots);
        Assert.Throws<ArgumentOutOfRangeException>(() => log.InstallSnapshot(verified, Installed + 2, EpochBefore));
    }
}

using Microsoft.Extensions.Logging;
using Understudy.Storage.Snapshots;

namespace Understudy.Storage.Tests;

/// <summary>Snapshot files: atomic saves, refusing damaged ones, chunked and resumable installs.</summary>
public sealed class SnapshotStoreTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private string SnapshotsPath => _folder.File("snapshots");

    private static byte[] State(int size, int seed)
    {
        var state = new byte[size];
        new Random(seed).NextBytes(state);
        return state;
    }

    private string FileOf(long index) => Path.Combine(SnapshotsPath, SnapshotFile.FileNameFor(index));

    [Fact]
    public void Saved_snapshots_load_back_and_only_the_newest_two_are_kept()
    {
        var store = new SnapshotStore(SnapshotsPath);
        Assert.Null(store.TryLoadLatest());
        Assert.Null(store.Latest);

        store.Save(100, 1, State(5000, 1));
        store.Save(200, 2, State(7000, 2));
        var info = store.Save(300, 3, State(0, 3)); // an empty state is a state
        Assert.Equal(new long[] { 200, 300 }, store.Indices());
        Assert.Equal(300, info.Index);
        Assert.Equal(SnapshotFile.HeaderSize, info.Bytes);

        var reopened = new SnapshotStore(SnapshotsPath);
        Assert.Equal(300, reopened.Latest?.Index);
        var latest = reopened.TryLoadLatest();
        Assert.NotNull(latest);
        Assert.Equal((300L, 3L, 0), (latest.Index, latest.Epoch, latest.State.Length));

        store.Save(400, 3, State(3000, 4));
        latest = reopened.TryLoadLatest();
        Assert.NotNull(latest);
        Assert.Equal(400, latest.Index);
        Assert.Equal(State(3000, 4), latest.State.ToArray());
    }

    [Fact]
    public void A_torn_snapshot_is_refused_and_the_one_before_it_is_used()
    {
        var store = new SnapshotStore(SnapshotsPath);
        store.Save(100, 1, State(5000, 1));
        store.Save(200, 2, State(5000, 2));

        // A crash can leave a shortened file only through a bug or a disk that lied; every cut must be refused.
        var whole = File.ReadAllBytes(FileOf(200));
        foreach (var cut in new[] { 0, 10, SnapshotFile.HeaderSize, 4999, whole.Length - 1 })
        {
            File.WriteAllBytes(FileOf(200), whole[..cut]);
            var logger = new ListLogger();
            var latest = new SnapshotStore(SnapshotsPath, logger).TryLoadLatest();
            Assert.NotNull(latest);
            Assert.Equal(100, latest.Index);
            Assert.Equal(State(5000, 1), latest.State.ToArray());
            var line = Assert.Single(logger.Lines, l => l.Id.Id == 3201);
            Assert.Equal(LogLevel.Warning, line.Level);
            Assert.Contains(SnapshotFile.FileNameFor(200), line.Message, StringComparison.Ordinal);
            Assert.Contains(cut < SnapshotFile.HeaderSize ? "shorter than" : "torn", line.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_corrupt_snapshot_is_refused_and_the_one_before_it_is_used()
    {
        var store = new SnapshotStore(SnapshotsPath);
        store.Save(100, 1, State(5000, 1));
        store.Save(200, 2, State(5000, 2));
        var whole = File.ReadAllBytes(FileOf(200));

        // A flipped bit in the state, and one in the header (where the lengths live).
        foreach (var (at, reason) in new[] { (SnapshotFile.HeaderSize + 2500, "state checksum mismatch"), (20, "header checksum mismatch") })
        {
            var damaged = (byte[])whole.Clone();
            damaged[at] ^= 0x10;
            File.WriteAllBytes(FileOf(200), damaged);
            var logger = new ListLogger();
            var latest = new SnapshotStore(SnapshotsPath, logger).TryLoadLatest();
            Assert.NotNull(latest);
            Assert.Equal(100, latest.Index);
            Assert.Contains(reason, Assert.Single(logger.Lines, l => l.Id.Id == 3201).Message, StringComparison.Ordinal);
        }

        // Both damaged: none, rather than a damaged one.
        var first = File.ReadAllBytes(FileOf(100));
        first[^1] ^= 1;
        File.WriteAllBytes(FileOf(100), first);
        Assert.Null(new SnapshotStore(SnapshotsPath).TryLoadLatest());
    }

    [Fact]
    public void A_failed_save_leaves_the_previous_snapshot_usable()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/dev/full is Linux's always-full device");
        var store = new SnapshotStore(SnapshotsPath);
        store.Save(100, 1, State(5000, 1));

        // The temporary file is /dev/full: the write fails with ENOSPC, like a full disk.
        File.CreateSymbolicLink(FileOf(200) + SnapshotFile.TempSuffix, "/dev/full");
        var e = Assert.Throws<StorageException>(() => store.Save(200, 2, State(5000, 2)));
        Assert.Contains("is full", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);

        Assert.Equal(new long[] { 100 }, store.Indices());
        Assert.False(File.Exists(FileOf(200) + SnapshotFile.TempSuffix));
        Assert.Equal(100, store.TryLoadLatest()?.Index);
        Assert.Equal(100, store.Latest?.Index);
    }

    [Fact]
    public void An_install_broken_off_resumes_where_it_stopped_and_publishes_only_when_whole()
    {
        var sender = new SnapshotStore(_folder.File("sender"));
        var state = State(100_000, 7);
        sender.Save(500, 4, state);
        var receiver = new SnapshotStore(SnapshotsPath);
        receiver.Save(100, 1, State(10, 1));

        using var source = sender.OpenRead(500);
        Assert.Equal((500L, 4L, SnapshotFile.HeaderSize + 100_000L), (source.Index, source.Epoch, source.Length));
        var chunk = new byte[16 * 1024];

        // The connection breaks after three chunks.
        using (var install = receiver.BeginInstall(500, 4, source.Length))
        {
            Assert.Equal(0, install.ReceivedLength);
            for (var i = 0; i < 3; i++)
            {
                var n = source.Read(install.ReceivedLength, chunk);
                install.Write(install.ReceivedLength, chunk.AsSpan(0, n));
            }
        }

        // Nothing is published yet: the old snapshot is still the latest.
        Assert.Equal(100, receiver.TryLoadLatest()?.Index);

        // A new receiver (after a restart) resumes at what it has; a resent overlapping chunk is fine, a gap is not.
        var again = new SnapshotStore(SnapshotsPath);
        using (var install = again.BeginInstall(500, 4, source.Length))
        {
            Assert.Equal(3 * chunk.Length, install.ReceivedLength);
            Assert.Throws<ArgumentOutOfRangeException>(() => install.Write(install.ReceivedLength + 1, chunk.AsSpan(0, 10)));
            var overlap = install.ReceivedLength - 100;
            var n = source.Read(overlap, chunk);
            install.Write(overlap, chunk.AsSpan(0, n));
            Assert.Equal(overlap + n, install.ReceivedLength);
            Assert.Throws<InvalidOperationException>(() => install.Complete());
            while (install.ReceivedLength < install.TotalLength)
            {
                n = source.Read(install.ReceivedLength, chunk);
                install.Write(install.ReceivedLength, chunk.AsSpan(0, n));
            }

            var info = install.Complete();
            Assert.Equal(500, info.Index);
        }

        var latest = again.TryLoadLatest();
        Assert.NotNull(latest);
        Assert.Equal((500L, 4L), (latest.Index, latest.Epoch));
        Assert.Equal(state, latest.State.ToArray());
        Assert.Equal(new long[] { 100, 500 }, again.Indices());
        Assert.Empty(Directory.GetFiles(SnapshotsPath, "*" + SnapshotFile.PartialSuffix));
    }

    [Fact]
    public void An_install_received_damaged_is_discarded_and_the_previous_snapshot_stays()
    {
        var sender = new SnapshotStore(_folder.File("sender"));
        sender.Save(500, 4, State(50_000, 7));
        var receiver = new SnapshotStore(SnapshotsPath);
        receiver.Save(100, 1, State(10, 1));

        using var source = sender.OpenRead(500);
        var bytes = new byte[source.Length];
        Assert.Equal(bytes.Length, source.Read(0, bytes));
        bytes[30_000] ^= 0x01; // damaged on the way

        using (var install = receiver.BeginInstall(500, 4, source.Length))
        {
            install.Write(0, bytes);
            var e = Assert.Throws<StorageException>(() => install.Complete());
            Assert.Contains("damaged", e.Message, StringComparison.Ordinal);
            Assert.Contains("from byte 0", e.Message, StringComparison.Ordinal);
        }

        Assert.Empty(Directory.GetFiles(SnapshotsPath, "*" + SnapshotFile.PartialSuffix));
        Assert.Equal(100, receiver.TryLoadLatest()?.Index);

        // Announced as another epoch than the sender's file holds: refused too.
        bytes[30_000] ^= 0x01;
        using (var install = receiver.BeginInstall(500, 5, source.Length))
        {
            install.Write(0, bytes);
            Assert.Contains("epoch 4", Assert.Throws<StorageException>(() => install.Complete()).Message, StringComparison.Ordinal);
        }

        Assert.Equal(100, receiver.TryLoadLatest()?.Index);
    }

    [Fact]
    public async Task A_server_restarts_from_its_latest_snapshot_and_the_log_after_it()
    {
        var options = new DurableLogOptions { SegmentSize = 2048, FsyncPolicy = FsyncPolicy.Never };
        var entries = Entries.Range(1, 300);
        await using (var log = DurableLog.Open(_folder.Path, options))
        {
            log.Append(entries);
            log.Snapshots.Save(150, 1, State(1000, 150));
            log.Snapshots.Save(200, 1, State(1000, 200));
            log.RemoveBelow(151); // below the older kept snapshot, so either can restart the server
            await Eventually.TrueAsync(() => log.FirstIndex > 1, "segments below 151 to go");
            var stats = log.Stats;
            Assert.Equal(200, stats.LastSnapshotIndex);
            Assert.Equal(SnapshotFile.HeaderSize + 1000, stats.LastSnapshotBytes);
            Assert.NotNull(stats.LastSnapshotTime);
            Assert.True(stats.RemovedSegments > 0);
            Assert.True(stats.BytesOnDisk > 0);
        }

        await using (var log = DurableLog.OpenFromSnapshot(_folder.Path, options))
        {
            Assert.Equal(200, log.RecoveredSnapshot?.Index);
            Assert.Equal(State(1000, 200), log.RecoveredSnapshot?.State.ToArray());
            Assert.Equal(201, log.RecoveredFrom);
            Entries.AssertSame(entries[200..], log.RecoveredEntries);
        }

        // The newest snapshot is damaged: the older one and a longer tail.
        var path = Path.Combine(_folder.Path, DurableLog.SnapshotFolderName, SnapshotFile.FileNameFor(200));
        var bytes = await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes, TestContext.Current.CancellationToken);
        await using (var log = DurableLog.OpenFromSnapshot(_folder.Path, options))
        {
            Assert.Equal(150, log.RecoveredSnapshot?.Index);
            Entries.AssertSame(entries[150..], log.RecoveredEntries);
        }
    }
}

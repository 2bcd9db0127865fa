// Opening the log: locking the folder, finishing an interrupted snapshot install, recovering the tail.
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Storage.Snapshots;

namespace Understudy.Storage;

public sealed partial class DurableLog
{
    /// <summary>Opens the log recovering every entry on disk (recoverFrom = 1); see <see cref="Open(string, DurableLogOptions, long, ILogger?)"/>.</summary>
    /// <exception cref="StorageException">The folder is in use, unreadable, or holds a damaged log; the message says how to fix it.</exception>
    public static DurableLog Open(string directory, DurableLogOptions options, ILogger? logger = null) =>
        Open(directory, options, 1, logger);

    /// <summary>
    /// Opens (creating if needed) the log in <paramref name="directory"/>, locks the folder against any other
    /// process, and recovers the tail from <paramref name="recoverFrom"/>: the segments holding those entries
    /// are read and checked (a torn tail of the last segment is cut off and logged, damage anywhere else
    /// throws); older segments are only listed, and checked when first read. An empty log starts at
    /// <paramref name="recoverFrom"/>.
    /// </summary>
    /// <param name="directory">The data folder.</param>
    /// <param name="options">Segment size, fsync policy, callbacks.</param>
    /// <param name="recoverFrom">The first index the caller needs in <see cref="RecoveredEntries"/>: its snapshot's index + 1, or 1.</param>
    /// <param name="logger">Where recovery and disk failures are reported.</param>
    /// <exception cref="StorageException">The folder is in use, unreadable, holds a damaged log, or the log starts above <paramref name="recoverFrom"/> (the snapshot that covered the gap is missing).</exception>
    public static DurableLog Open(string directory, DurableLogOptions options, long recoverFrom, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(recoverFrom, 1);
        return OpenCore(directory, options, logger, (_, _, _) => (recoverFrom, null, null));
    }

    /// <summary>
    /// Opens the log as a restarting server needs it: loads the newest valid snapshot from <see cref="Snapshots"/>
    /// (a torn or corrupt one is refused, logged, and the one before it used) into <see cref="RecoveredSnapshot"/>,
    /// then recovers only the entries after it. Without a snapshot this is <c>Open(directory, options, 1, logger)</c>.
    /// </summary>
    /// <exception cref="StorageException">As <see cref="Open(string, DurableLogOptions, long, ILogger?)"/>.</exception>
    /// <remarks>
    /// A snapshot installed from the primary comes with a <see cref="LogStart"/> file: when it still names the newest
    /// snapshot, the log is recovered from its next index (<see cref="RecoveredLogStart"/>). An install cut short after
    /// that file was written is finished here (the older segments removed, the received snapshot renamed into place),
    /// so a restart finds either the old log and snapshots or the new snapshot with its log, never a mix.
    /// </remarks>
    public static DurableLog OpenFromSnapshot(string directory, DurableLogOptions options, ILogger? logger = null) =>
        OpenCore(directory, options, logger, (folder, snapshots, log) =>
        {
            var start = LogStartFile.Read(folder);
            if (start is { } pending && snapshots.Indices() is var indices && (indices.Count == 0 || indices[^1] < pending.SnapshotIndex))
            {
                FinishInstall(folder, snapshots, pending, log);
            }

            var snapshot = snapshots.TryLoadLatest();
            return start is { } s && snapshot is not null && snapshot.Index == s.SnapshotIndex
                ? (s.NextIndex, snapshot, s)
                : ((snapshot?.Index ?? 0) + 1, snapshot, null);
        });

    /// <summary>
    /// The install of <paramref name="start"/>'s snapshot took effect (its log start was written) but the process died
    /// before the snapshot was renamed into place: every segment on disk is the old log (nothing is appended before the
    /// rename), so they go, then the received file, verified and fsynced before the log start was written, is published.
    /// </summary>
    private static void FinishInstall(string folder, SnapshotStore snapshots, LogStart start, ILogger logger)
    {
        var removed = 0;
        foreach (var file in System.IO.Directory.EnumerateFiles(folder, "*" + Segment.Extension))
        {
            if (Segment.TryParseName(Path.GetFileName(file), out _))
            {
                File.Delete(file);
                removed++;
            }
        }

        DiskFiles.FsyncDirectory(folder);
        if (!snapshots.TryFinishInstall(start.SnapshotIndex, out var reason))
        {
            throw new StorageException(
                $"Snapshot {start.SnapshotIndex} was being installed in '{folder}' (its log start was recorded) but the received file cannot be published: {reason}. {LogRecovery.Remedy}");
        }

        logger.InstallFinishedAtOpen(start.SnapshotIndex, removed, start.NextIndex);
    }

    private static DurableLog OpenCore(string directory, DurableLogOptions options, ILogger? logger, Func<string, SnapshotStore, ILogger, (long RecoverFrom, StoredSnapshot? Snapshot, LogStart? Start)> start)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        logger ??= NullLogger.Instance;
        var full = Path.GetFullPath(directory);
        var started = Stopwatch.GetTimestamp();

        try
        {
            System.IO.Directory.CreateDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, "creating the data folder", full);
        }

        var folderLock = FolderLock.Acquire(full, "server");
        try
        {
            if (DiskFiles.RemoveStaleTemp(full, EpochFile.FileName) is { } stale)
            {
                logger.StaleTempRemoved(stale);
            }

            var epoch = EpochFile.Read(full);
            var snapshots = new SnapshotStore(Path.Combine(full, SnapshotFolderName), logger);
            if (DiskFiles.RemoveStaleTemp(full, LogStartFile.FileName) is { } staleStart)
            {
                logger.StaleTempRemoved(staleStart);
            }

            var (recoverFrom, snapshot, logStart) = start(full, snapshots, logger);
            var recovered = LogRecovery.Recover(full, recoverFrom, logger);
            if (options.FsyncPolicy != FsyncPolicy.Never)
            {
                // A killed process leaves written-but-unsynced data in the page cache, where recovery just
                // read it; the server will treat all of it as durable, so make it so.
                if (recovered.Segments.Count > 0)
                {
                    using var last = File.OpenHandle(recovered.Segments[^1].Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
                    RandomAccess.FlushToDisk(last);
                }

                DiskFiles.FsyncDirectory(full);
            }

            var log = new DurableLog(full, options, logger, folderLock, recovered, epoch, recoverFrom, snapshot, logStart) { Snapshots = snapshots };
            var elapsedMs = (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            logger.LogRecovered(recovered.Entries.Count, recovered.FirstIndex, recovered.LastIndex, recovered.Segments.Count, recovered.SegmentsRead, full, epoch, elapsedMs);
            return log;
        }
        catch (Exception e)
        {
            folderLock.Dispose();
            if (e is IOException or UnauthorizedAccessException)
            {
                throw DiskErrors.Describe(e, "recovering the log", full);
            }

            throw;
        }
    }
}

// Longer than the usual 500 lines on purpose: the writer task, segment rolling, truncation, compaction, fsync and
// the readers share the segment list and the work queue. The record format lives in LogRecord.cs, record reading in
// RecordCursor.cs and start-up recovery in LogRecovery.cs.
using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using Understudy.Protocol;
using Understudy.Storage.Snapshots;

namespace Understudy.Storage;

/// <summary>
/// A server's replicated log on disk: segment files of checksummed records in one data folder, plus the
/// saved epoch. It is what <c>IServerEnvironment.AppendLog</c>, <c>TruncateLog</c>, <c>SyncLog</c> and
/// <c>SaveEpoch</c> do in a real server.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Append"/>, <see cref="Truncate"/> and <see cref="RequestSync"/> only enqueue, in call order,
/// for one background writer (a channel drained by one task). The writer takes everything queued, writes it
/// in as few system calls as it can, then answers the sync requests it took with a single fsync (group
/// commit): while that fsync runs, new work piles up and the next fsync covers all of it. After each one it
/// calls <see cref="DurableLogOptions.Synced"/> with the latest request.
/// </para>
/// <para>
/// Disk errors: the writer cannot throw to the caller, so a failure (disk full, read-only, I/O error) is
/// raised both ways: <see cref="DurableLogOptions.Faulted"/> is called once with a
/// <see cref="StorageException"/>, and every later call throws it. No Synced report follows a failure, so a
/// server never acknowledges a write its disk did not take. The log does not retry: after a failed write or
/// fsync the kernel may have dropped the dirty pages (the "fsyncgate" lesson), so retrying could report data
/// durable that is not. Restarting recovers from what is really on disk.
/// </para>
/// <para>
/// Reading and compaction: <see cref="Read"/> reads written entries back from the segment files, from any
/// thread, while the writer appends; only the open segment keeps every record's offset in memory (see
/// <see cref="Segment"/>), so memory does not grow with the log. <see cref="RemoveBelow"/> deletes whole old
/// segments in order with the writer's work. The writer's destructive steps (truncation, compaction, reset)
/// wait for reads in progress to finish, so a read never sees a file cut or deleted under it.
/// </para>
/// </remarks>
public sealed class DurableLog : IAsyncDisposable
{
    /// <summary>Work items taken per batch before the writer stops to sync, so a flood cannot starve fsync.</summary>
    private const int MaxItemsPerBatch = 4096;

    /// <summary>Encoded bytes gathered before a write system call; bounds the buffer, keeps calls large.</summary>
    private const int WriteChunkBytes = 1024 * 1024;

    private readonly string _directory;
    private readonly DurableLogOptions _options;
    private readonly ILogger _logger;
    private readonly FolderLock _folderLock;
    private readonly Channel<Work> _queue;
    private readonly Task _writer;
    private readonly Task _batchTimer;
    private readonly CancellationTokenSource _stopTimer = new();
    private readonly Lock _enqueueLock = new();
    private readonly Lock _epochLock = new();

    /// <summary>Guards the segment list and each segment's published Length/Count/Sparse, and the read handles.</summary>
    private readonly Lock _segmentsLock = new();

    /// <summary>Readers hold it shared while they read files; the writer holds it exclusively to cut or delete files.</summary>
    private readonly ReaderWriterLockSlim _filesLock = new(LockRecursionPolicy.NoRecursion);

    private readonly SegmentHandles _readHandles;

    // Writer state: touched only by the writer task once the constructor has returned, except the segment list,
    // which the writer changes (and readers read) under _segmentsLock.
    private readonly List<Segment> _segments;
    private readonly ArrayBufferWriter<byte> _pending = new(64 * 1024);
    private SafeFileHandle? _current;
    private long _writtenIndex;
    private bool _syncWanted;
    private long _syncThrough;
    private long _syncGeneration;

    // Shared with the timer and callers.
    private volatile StorageException? _fault;
    private volatile bool _disposed;
    private int _unsynced;
    private int _tickQueued;
    private long _enqueuedLastIndex;
    private long _savedEpoch;

    // Counters for Stats; written by the writer, read anywhere.
    private long _bytesWritten;
    private long _fsyncCount;
    private long _fsyncTicksTotal;
    private long _fsyncTicksLast;
    private int _segmentCount;
    private long _lastIndex;
    private long _durableIndex;
    private long _removedSegments;

    // Under _segmentsLock: the last index written to the operating system, so readable.
    private long _readableIndex;

    private DurableLog(string directory, DurableLogOptions options, ILogger logger, FolderLock folderLock, RecoveredLog recovered, long epoch, long recoverFrom, StoredSnapshot? snapshot, LogStart? logStart)
    {
        _directory = directory;
        _options = options;
        _logger = logger;
        _folderLock = folderLock;
        _segments = recovered.Segments;
        _readHandles = new SegmentHandles(options.ReadHandles);
        RecoveredEntries = recovered.Entries;
        RecoveredEpoch = epoch;
        RecoveredFrom = recoverFrom;
        RecoveredSnapshot = snapshot;
        RecoveredLogStart = logStart;
        _savedEpoch = epoch;

        var last = recovered.LastIndex;
        _writtenIndex = last;
        _readableIndex = last;
        _enqueuedLastIndex = last;
        _lastIndex = last;
        _durableIndex = last;
        _segmentCount = _segments.Count;
        if (_segments.Count > 0)
        {
            _current = File.OpenHandle(_segments[^1].Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        }

        _queue = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = false });
        _writer = Task.Run(RunWriterAsync);
        _batchTimer = options.FsyncPolicy == FsyncPolicy.Batch ? Task.Run(() => RunBatchTimerAsync(_stopTimer.Token)) : Task.CompletedTask;
    }

    private enum WorkKind
    {
        Append,
        Truncate,
        Sync,
        FsyncTick,
        RemoveBelow,
        Reset,
    }

    /// <summary>The data folder (full path).</summary>
    public string Directory => _directory;

    /// <summary>
    /// The log's tail as recovered at open: the entries from <see cref="RecoveredFrom"/> through the last on disk,
    /// contiguous, commands copied out of the files (empty when the log ends before that index). For the server
    /// core's constructor; older entries are read on demand with <see cref="Read"/>. Empty after <see cref="ReleaseRecovered"/>.
    /// </summary>
    public IReadOnlyList<LogEntry> RecoveredEntries { get; private set; }

    /// <summary>
    /// The first index recovery was asked for (1, a snapshot's index + 1, or <see cref="RecoveredLogStart"/>'s next index). When the log on disk ends before
    /// <c>RecoveredFrom - 1</c> (a snapshot was installed past its end), the caller continues it with
    /// <see cref="ResetTo"/>(<see cref="RecoveredFrom"/>).
    /// </summary>
    public long RecoveredFrom { get; }

    /// <summary>
    /// With <see cref="OpenFromSnapshot"/>: the newest valid snapshot, which <see cref="RecoveredEntries"/> continue
    /// (null when there is none, or with the other Open overloads, or after <see cref="ReleaseRecovered"/>).
    /// </summary>
    public StoredSnapshot? RecoveredSnapshot { get; private set; }

    /// <summary>
    /// Lets go of <see cref="RecoveredEntries"/> and <see cref="RecoveredSnapshot"/> once the caller has built its state
    /// from them. Held for the life of the log they pinned the whole recovered tail (up to a snapshot interval of
    /// entries, every command included) and the snapshot's bytes long after the in-memory window had let them go: tens
    /// of MiB more in every restarted server.
    /// </summary>
    public void ReleaseRecovered()
    {
        RecoveredEntries = [];
        RecoveredSnapshot = null;
    }

    /// <summary>
    /// With <see cref="OpenFromSnapshot"/>, when <see cref="RecoveredSnapshot"/> was installed from the primary
    /// (<see cref="InstallSnapshot"/>) and no newer one taken since: where its log starts, possibly at or below the
    /// snapshot's index (<see cref="RecoveredEntries"/> then start there, and may end before the snapshot: the
    /// server was still receiving the entries the snapshot's state reads). Null otherwise.
    /// </summary>
    public LogStart? RecoveredLogStart { get; }

    /// <summary>The snapshot store of this data folder (its <see cref="SnapshotFolderName"/> subfolder), under the same folder lock.</summary>
    public SnapshotStore Snapshots { get; private set; } = null!;

    /// <summary>Name of the subfolder of the data folder that holds snapshots.</summary>
    public const string SnapshotFolderName = "snapshots";

    /// <summary>What each segment keeps in memory, oldest first (for tests: sealed segments must not hold per-entry offsets).</summary>
    internal List<(long FirstIndex, long Count, int? Offsets, int? Sparse)> SegmentMemory()
    {
        lock (_segmentsLock)
        {
            return [.. _segments.Select(s => (s.FirstIndex, s.Count, s.Offsets?.Count, s.Sparse?.Count))];
        }
    }

    /// <summary>Read handles open now (for tests).</summary>
    internal int OpenReadHandles
    {
        get
        {
            lock (_segmentsLock)
            {
                return _readHandles.Count;
            }
        }
    }

    /// <summary>
    /// The first index still on disk, as the writer last left it: entries below were removed by
    /// <see cref="RemoveBelow"/> (or the log began above 1 after a snapshot); <see cref="LastIndex"/> + 1 when empty.
    /// </summary>
    public long FirstIndex
    {
        get
        {
            lock (_segmentsLock)
            {
                return _segments.Count > 0 ? _segments[0].FirstIndex : _readableIndex + 1;
            }
        }
    }

    /// <summary>The highest epoch saved with <see cref="SaveEpoch"/> before this open (0 if none).</summary>
    public long RecoveredEpoch { get; }

    /// <summary>The last index appended (queued), after truncations.</summary>
    public long LastIndex
    {
        get
        {
            lock (_enqueueLock)
            {
                return _enqueuedLastIndex;
            }
        }
    }

    /// <summary>The failure that stopped the log, or null while it is healthy.</summary>
    public StorageException? Fault => _fault;

    /// <summary>Counters for metrics.</summary>
    public DurableLogStats Stats
    {
        get
        {
            long firstIndex;
            long bytesOnDisk = 0;
            lock (_segmentsLock)
            {
                firstIndex = _segments.Count > 0 ? _segments[0].FirstIndex : _readableIndex + 1;
                foreach (var segment in _segments)
                {
                    bytesOnDisk += segment.Length;
                }
            }

            var snapshot = Snapshots.Latest;
            return new DurableLogStats(
                Interlocked.Read(ref _bytesWritten),
                Interlocked.Read(ref _fsyncCount),
                Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _fsyncTicksTotal)),
                Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _fsyncTicksLast)),
                Volatile.Read(ref _segmentCount),
                Interlocked.Read(ref _lastIndex),
                Interlocked.Read(ref _durableIndex))
            {
                FirstIndex = firstIndex,
                BytesOnDisk = bytesOnDisk,
                RemovedSegments = Interlocked.Read(ref _removedSegments),
                LastSnapshotIndex = snapshot?.Index ?? 0,
                LastSnapshotBytes = snapshot?.Bytes ?? 0,
                LastSnapshotTime = snapshot?.Time,
            };
        }
    }

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

    /// <summary>
    /// Queues entries for writing; they are durable once a later <see cref="RequestSync"/> is reported. The
    /// entries must continue the log (first index = <see cref="LastIndex"/> + 1, then contiguous). The log
    /// keeps a reference to each entry's command until it is written, so commands must not be changed.
    /// </summary>
    public void Append(ReadOnlySpan<LogEntry> entries)
    {
        if (entries.IsEmpty)
        {
            return;
        }

        lock (_enqueueLock)
        {
            ThrowIfStopped();
            var expected = _enqueuedLastIndex + 1;
            foreach (ref readonly var entry in entries)
            {
                if (entry.Index != expected)
                {
                    throw new ArgumentException($"entry {entry} does not continue the log, which ends at index {expected - 1}", nameof(entries));
                }

                if (entry.Command.Length > LogRecord.MaxCommandSize)
                {
                    throw new ArgumentException($"entry {entry} has a {entry.Command.Length}-byte command, over the {LogRecord.MaxCommandSize}-byte limit", nameof(entries));
                }

                expected++;
            }

            Enqueue(new Work(WorkKind.Append, entries.ToArray(), 0, 0));
            _enqueuedLastIndex = expected - 1;
        }
    }

    /// <summary>
    /// Queues removal of every entry from <paramref name="fromIndex"/> on (deleting later segments), ordered
    /// with appends. The writer makes a truncation durable before it writes anything after it, so a crash can
    /// never leave new entries followed by stale old ones. Nothing to remove is not an error.
    /// </summary>
    public void Truncate(long fromIndex)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(fromIndex, 1);
        lock (_enqueueLock)
        {
            ThrowIfStopped();
            if (fromIndex > _enqueuedLastIndex)
            {
                return;
            }

            Enqueue(new Work(WorkKind.Truncate, null, fromIndex, 0));
            _enqueuedLastIndex = fromIndex - 1;
        }
    }

    /// <summary>
    /// Asks for everything queued so far to be made durable (per <see cref="FsyncPolicy"/>); answered later
    /// through <see cref="DurableLogOptions.Synced"/>, possibly together with later requests.
    /// </summary>
    public void RequestSync(long throughIndex, long generation)
    {
        lock (_enqueueLock)
        {
            ThrowIfStopped();
            Enqueue(new Work(WorkKind.Sync, null, throughIndex, generation));
        }
    }

    /// <summary>
    /// Records the highest epoch seen; durable when it returns (temporary file, fsync, rename, folder fsync).
    /// An epoch not above the saved one changes nothing: the saved epoch never goes back.
    /// </summary>
    public void SaveEpoch(long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        lock (_epochLock)
        {
            ThrowIfStopped();
            if (epoch <= _savedEpoch)
            {
                return;
            }

            try
            {
                EpochFile.Write(_directory, epoch);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The same disk holds the log: stop it too rather than acknowledge onto a failing disk.
                var fault = DiskErrors.Describe(e, "saving the epoch", Path.Combine(_directory, EpochFile.FileName));
                Fail(fault);
                throw fault;
            }

            _savedEpoch = epoch;
        }

        _logger.EpochSaved(epoch);
    }

    /// <summary>
    /// Queues removal of every whole segment file whose entries all lie below <paramref name="index"/> (the
    /// open segment never goes), in order with appends and truncations; <see cref="FirstIndex"/> advances once
    /// the writer has done it, and stays advanced after a restart. The caller keeps the invariant that matters:
    /// everything below <paramref name="index"/> is in a saved snapshot, and nothing above the commit index is
    /// removed. Oldest files go first, so a crash part-way leaves a log that still starts at a segment boundary.
    /// </summary>
    public void RemoveBelow(long index)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(index, 1);
        lock (_enqueueLock)
        {
            ThrowIfStopped();
            Enqueue(new Work(WorkKind.RemoveBelow, null, index, 0));
        }
    }

    /// <summary>
    /// Queues removal of the whole log, which then continues at <paramref name="nextIndex"/>: for a log found at open
    /// to end before the snapshot it was opened from (<see cref="RecoveredFrom"/>). Ordered with appends like
    /// <see cref="Truncate"/>, the folder fsynced before anything queued after it is written. A snapshot received
    /// from the primary is installed with <see cref="InstallSnapshot"/> instead, which also records where the log starts.
    /// </summary>
    public void ResetTo(long nextIndex)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nextIndex, 1);
        lock (_enqueueLock)
        {
            ThrowIfStopped();
            Enqueue(new Work(WorkKind.Reset, null, nextIndex, 0));
            _enqueuedLastIndex = nextIndex - 1;
        }
    }

    /// <summary>
    /// Installs a snapshot received from the primary and replaces the whole log, which then continues at
    /// <paramref name="nextIndex"/> (after an entry of <paramref name="epochBefore"/>; at or below the snapshot's
    /// index + 1). Ordered with appends like <see cref="Truncate"/>; the writer makes it durable before anything queued
    /// after it, in an order that leaves a crash at any moment with either the old log and snapshots or the new snapshot
    /// and the new log (see <see cref="OpenFromSnapshot"/>): the <see cref="LogStart"/> file (written atomically: the
    /// moment the install takes effect), the old segments removed (folder fsynced), then the snapshot renamed into place.
    /// </summary>
    /// <param name="received">The received snapshot, verified (<see cref="SnapshotInstaller.Verify"/>); the log publishes it.</param>
    /// <param name="nextIndex">The first index the log will hold.</param>
    /// <param name="epochBefore">The epoch of the entry at <paramref name="nextIndex"/> - 1.</param>
    public void InstallSnapshot(SnapshotInstaller received, long nextIndex, long epochBefore)
    {
        ArgumentNullException.ThrowIfNull(received);
        ArgumentOutOfRangeException.ThrowIfLessThan(nextIndex, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nextIndex, received.Index + 1);
        ArgumentOutOfRangeException.ThrowIfNegative(epochBefore);
        if (!received.Verified)
        {
            throw new ArgumentException($"snapshot {received.Index} must be verified before it is installed", nameof(received));
        }

        lock (_enqueueLock)
        {
            ThrowIfStopped();
            Enqueue(new Work(WorkKind.Reset, null, nextIndex, epochBefore, received));
            _enqueuedLastIndex = nextIndex - 1;
        }
    }

    /// <summary>
    /// Reads entries <paramref name="from"/>, <paramref name="from"/> + 1, ... back from the segment files: at
    /// most <paramref name="maxCount"/> entries and about <paramref name="maxBytes"/> bytes of records (always at
    /// least one entry when one is there, so a huge entry still makes progress). Only entries the writer has
    /// already written are returned: fewer (or none) when the log ends sooner. Safe from any thread while the
    /// writer works; each record's checksum is checked. Commands are copied out.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="from"/> is below <see cref="FirstIndex"/> (removed by compaction).</exception>
    /// <exception cref="StorageException">A record on disk is damaged, or the disk failed; the message says where.</exception>
    public LogEntry[] Read(long from, int maxCount, int maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        ObjectDisposedException.ThrowIf(_disposed, this);

        var result = new List<LogEntry>(Math.Min(maxCount, 1024));
        long bytes = 0;
        var next = from;
        _filesLock.EnterReadLock();
        try
        {
            while (result.Count < maxCount)
            {
                Segment segment;
                long last;
                SegmentHandles.Lease lease;
                lock (_segmentsLock)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    if (_segments.Count == 0 || next > _readableIndex)
                    {
                        break;
                    }

                    if (next < _segments[0].FirstIndex)
                    {
                        throw new ArgumentOutOfRangeException(nameof(from), from, $"entries below index {_segments[0].FirstIndex} were removed from the log (compacted into a snapshot)");
                    }

                    segment = _segments[FindSegment(next)];
                    last = Math.Min(segment.LastIndex, _readableIndex);
                    if (next > last)
                    {
                        break;
                    }

                    lease = _readHandles.Rent(segment);
                }

                try
                {
                    var done = ReadSegment(segment, lease.Handle, next, last, maxCount, maxBytes, result, ref bytes);
                    next = from + result.Count;
                    if (done)
                    {
                        break;
                    }
                }
                finally
                {
                    lock (_segmentsLock)
                    {
                        _readHandles.Return(lease);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"reading log entries from index {next}", _directory);
        }
        finally
        {
            _filesLock.ExitReadLock();
        }

        return [.. result];
    }

    /// <summary>Writes and syncs (per policy) everything queued, stops the writer and releases the folder.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_enqueueLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _queue.Writer.TryComplete();
        }

        await _stopTimer.CancelAsync();
        await _batchTimer;
        await _writer;
        _current?.Dispose();
        _current = null;
        _filesLock.EnterWriteLock();
        try
        {
            lock (_segmentsLock)
            {
                _readHandles.CloseAll();
            }
        }
        finally
        {
            _filesLock.ExitWriteLock();
        }

        _filesLock.Dispose();
        _stopTimer.Dispose();
        _folderLock.Dispose();
    }

    // ------------------------------------------------------------------ readers

    /// <summary>Position in <see cref="_segments"/> of the segment holding <paramref name="index"/> (the last starting at or before it). Under _segmentsLock.</summary>
    private int FindSegment(long index)
    {
        int lo = 0, hi = _segments.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (_segments[mid].FirstIndex <= index)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }

    /// <summary>Reads from one segment into <paramref name="result"/>; true when a limit was reached. Under the shared files lock.</summary>
    private bool ReadSegment(Segment segment, SafeFileHandle handle, long from, long last, int maxCount, int maxBytes, List<LogEntry> result, ref long bytes)
    {
        long start;
        long startIndex;
        long limit;
        lock (_segmentsLock)
        {
            limit = segment.Length;
            var sparse = segment.Sparse;
            if (sparse is null)
            {
                start = -1;
                startIndex = 0;
            }
            else
            {
                var k = (int)((from - segment.FirstIndex) / Segment.SparseEvery);
                start = sparse[k];
                startIndex = segment.FirstIndex + ((long)k * Segment.SparseEvery);
            }
        }

        if (start < 0)
        {
            // A segment recovery only listed: index it once, checking every record on the way.
            var sparse = IndexSegment(segment, handle, limit);
            lock (_segmentsLock)
            {
                segment.Sparse ??= sparse;
            }

            var k = (int)((from - segment.FirstIndex) / Segment.SparseEvery);
            start = sparse[k];
            startIndex = segment.FirstIndex + ((long)k * Segment.SparseEvery);
        }

        using var cursor = new RecordCursor(handle, segment.Path, start, limit, startIndex);
        while (cursor.Index <= last)
        {
            if (!cursor.Next(out var record))
            {
                throw new StorageException(
                    $"Segment '{segment.Path}' ends at byte {limit} before index {cursor.Index}, which it should hold (it holds through {segment.LastIndex}). {LogRecovery.Remedy}");
            }

            if (cursor.Index - 1 < from)
            {
                continue;
            }

            if (result.Count > 0 && bytes + record.Length > maxBytes)
            {
                return true;
            }

            result.Add(cursor.Parse(record));
            bytes += record.Length;
            if (result.Count >= maxCount || bytes >= maxBytes)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Reads a sealed segment whole and returns its sparse index; checks every record and the count its name implies.</summary>
    private static List<long> IndexSegment(Segment segment, SafeFileHandle handle, long length)
    {
        var sparse = new List<long>((int)((segment.Count + Segment.SparseEvery - 1) / Segment.SparseEvery));
        using var cursor = new RecordCursor(handle, segment.Path, 0, length, segment.FirstIndex);
        var n = 0L;
        while (true)
        {
            var offset = cursor.Offset;
            if (!cursor.Next(out _))
            {
                break;
            }

            if (n % Segment.SparseEvery == 0)
            {
                sparse.Add(offset);
            }

            n++;
        }

        if (n != segment.Count)
        {
            throw new StorageException(
                $"Segment '{segment.Path}' holds {n} entries but the next segment's name says it should hold {segment.Count}: the log has a hole. {LogRecovery.Remedy}");
        }

        return sparse;
    }

    /// <summary>Every record offset of a segment (to reopen a sealed one for truncation). Writer only.</summary>
    private static List<long> LoadOffsets(Segment segment)
    {
        using var handle = File.OpenHandle(segment.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var offsets = new List<long>();
        using var cursor = new RecordCursor(handle, segment.Path, 0, segment.Length, segment.FirstIndex);
        while (true)
        {
            var offset = cursor.Offset;
            if (!cursor.Next(out _))
            {
                return offsets;
            }

            offsets.Add(offset);
        }
    }

    // ------------------------------------------------------------------ enqueue side

    private void ThrowIfStopped()
    {
        if (_fault is { } fault)
        {
            throw fault;
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
    }

    private void Enqueue(Work work)
    {
        if (!_queue.Writer.TryWrite(work))
        {
            // The writer completed the queue: it failed between our check and now.
            throw _fault ?? (Exception)new ObjectDisposedException(nameof(DurableLog));
        }
    }

    // ------------------------------------------------------------------ writer

    private async Task RunWriterAsync()
    {
        var reader = _queue.Reader;
        try
        {
            // After a fault (here or in SaveEpoch) nothing more is written or reported.
            while (_fault is null && await reader.WaitToReadAsync())
            {
                var taken = 0;
                while (_fault is null && taken < MaxItemsPerBatch && reader.TryRead(out var work))
                {
                    Apply(work);
                    taken++;
                }

                if (_fault is null)
                {
                    WritePending();
                    AnswerSyncs();
                }
            }

            // Disposed: the queue is drained. Leave the disk as the policy promises.
            if (_fault is null && _options.FsyncPolicy != FsyncPolicy.Never && Volatile.Read(ref _unsynced) != 0)
            {
                FsyncCurrent();
            }
        }
        catch (Exception e)
        {
            Fail(DiskErrors.Describe(e, "writing the log", _current is null ? _directory : _segments[^1].Path));
        }
    }

    private void Apply(in Work work)
    {
        switch (work.Kind)
        {
            case WorkKind.Append:
                foreach (var entry in work.Entries!)
                {
                    AppendOne(entry);
                }

                break;
            case WorkKind.Truncate:
                TruncateFrom(work.A);
                break;
            case WorkKind.Sync:
                // Only the latest request matters: it covers everything queued before it.
                _syncWanted = true;
                _syncThrough = work.A;
                _syncGeneration = work.B;
                break;
            case WorkKind.RemoveBelow:
                RemoveSegmentsBelow(work.A);
                break;
            case WorkKind.Reset when work.Received is { } received:
                // The log start first: from here a restart takes the new snapshot (finishing its publication) and only
                // the log written after this reset. Then the old segments go, then the snapshot is renamed into place.
                LogStartFile.Write(_directory, new LogStart(received.Index, work.A, work.B));
                ResetLog(work.A);
                received.Publish();
                break;
            case WorkKind.Reset:
                ResetLog(work.A);
                break;
            case WorkKind.FsyncTick:
                Volatile.Write(ref _tickQueued, 0);
                WritePending();
                if (Volatile.Read(ref _unsynced) != 0)
                {
                    FsyncCurrent();
                }

                break;
        }
    }

    private void AppendOne(in LogEntry entry)
    {
        var size = LogRecord.SizeOf(entry);
        var segment = _segments.Count == 0 ? null : _segments[^1];
        var used = segment is null ? 0 : segment.Length + _pending.WrittenCount;
        if (segment is null || (used > 0 && used + size > _options.SegmentSize))
        {
            RollOver(entry.Index);
            segment = _segments[^1];
        }

        segment.Offsets!.Add(segment.Length + _pending.WrittenCount);
        LogRecord.Write(entry, _pending.GetSpan(size)[..size]);
        _pending.Advance(size);
        _writtenIndex = entry.Index;
        if (_pending.WrittenCount >= WriteChunkBytes)
        {
            WritePending();
        }
    }

    /// <summary>Starts a new segment at <paramref name="firstIndex"/>, closing the current one durably first.</summary>
    private void RollOver(long firstIndex)
    {
        if (_current is not null)
        {
            // Only the newest segment is fsynced when a sync is answered, so an older one must be complete on
            // disk before it stops being the newest; that also keeps a torn write confined to the last segment.
            WritePending();
            if (_options.FsyncPolicy != FsyncPolicy.Never && Volatile.Read(ref _unsynced) != 0)
            {
                FsyncCurrent();
            }

            _current.Dispose();
            _current = null;
        }

        var segment = new Segment(_directory, firstIndex) { Offsets = [], Sparse = [] };
        _current = File.OpenHandle(segment.Path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
        lock (_segmentsLock)
        {
            if (_segments.Count > 0)
            {
                // Sealed: its sparse index is complete (WritePending keeps it up to date), the full one goes.
                _segments[^1].Offsets = null;
            }

            _segments.Add(segment);
        }

        if (_options.FsyncPolicy != FsyncPolicy.Never)
        {
            DiskFiles.FsyncDirectory(_directory);
        }

        Volatile.Write(ref _segmentCount, _segments.Count);
        _logger.SegmentCreated(segment.Path);
    }

    private void TruncateFrom(long fromIndex)
    {
        WritePending();
        if (fromIndex > _writtenIndex)
        {
            return;
        }

        var deleted = 0;
        _filesLock.EnterWriteLock();
        try
        {
            // Delete whole segments from the newest back, so a crash part-way leaves a prefix of the log.
            while (_segments.Count > 0 && _segments[^1].FirstIndex >= fromIndex)
            {
                _current?.Dispose();
                _current = null;
                DeleteSegment(_segments[^1]);
                lock (_segmentsLock)
                {
                    _segments.RemoveAt(_segments.Count - 1);
                }

                deleted++;
            }

            var durable = _options.FsyncPolicy != FsyncPolicy.Never;
            if (deleted > 0 && durable)
            {
                // Before cutting the segment that remains: otherwise a crash could bring a deleted segment back
                // after a shortened one, and recovery would find a hole.
                DiskFiles.FsyncDirectory(_directory);
            }

            if (_segments.Count > 0)
            {
                var segment = _segments[^1];
                _current ??= File.OpenHandle(segment.Path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);

                // A sealed segment becomes the open one again: it needs every offset back (read from the file).
                if (segment.Offsets is null)
                {
                    segment.Offsets = LoadOffsets(segment);
                    lock (_segmentsLock)
                    {
                        segment.Sparse ??= Segment.SparseOf(segment.Offsets, segment.Offsets.Count);
                    }
                }

                var keep = (int)(fromIndex - segment.FirstIndex);
                if (keep < segment.Offsets.Count)
                {
                    lock (_segmentsLock)
                    {
                        segment.Length = segment.Offsets[keep];
                        segment.Offsets.RemoveRange(keep, segment.Offsets.Count - keep);
                        segment.Count = keep;
                        segment.Sparse = Segment.SparseOf(segment.Offsets, keep);
                    }

                    RandomAccess.SetLength(_current, segment.Length);
                    Volatile.Write(ref _unsynced, 1);
                }

                if (durable)
                {
                    // Durable now, before any later append lands after the cut (see Truncate).
                    FsyncCurrent();
                }
            }

            _writtenIndex = fromIndex - 1;
            lock (_segmentsLock)
            {
                _readableIndex = _writtenIndex;
            }
        }
        finally
        {
            _filesLock.ExitWriteLock();
        }

        Interlocked.Exchange(ref _lastIndex, _writtenIndex);
        Interlocked.Exchange(ref _durableIndex, Math.Min(Interlocked.Read(ref _durableIndex), _writtenIndex));
        Volatile.Write(ref _segmentCount, _segments.Count);
        _logger.LogTruncated(fromIndex, deleted);
    }

    /// <summary>Deletes the old segments holding only entries below <paramref name="index"/>, oldest first, never the open one.</summary>
    private void RemoveSegmentsBelow(long index)
    {
        var removable = 0;
        while (removable < _segments.Count - 1 && _segments[removable + 1].FirstIndex <= index)
        {
            removable++;
        }

        if (removable == 0)
        {
            return;
        }

        var deleted = 0;
        _filesLock.EnterWriteLock();
        try
        {
            for (; deleted < removable; deleted++)
            {
                DeleteSegment(_segments[deleted]);
            }
        }
        finally
        {
            // At once, so FirstIndex moves in one step (or as far as the files went, if a delete failed).
            lock (_segmentsLock)
            {
                _segments.RemoveRange(0, deleted);
            }

            _filesLock.ExitWriteLock();
        }

        if (_options.FsyncPolicy != FsyncPolicy.Never)
        {
            DiskFiles.FsyncDirectory(_directory);
        }

        Interlocked.Add(ref _removedSegments, removable);
        Volatile.Write(ref _segmentCount, _segments.Count);
        _logger.SegmentsRemoved(removable, index, _segments[0].FirstIndex);
    }

    /// <summary>Deletes every segment (newest first) and continues the log at <paramref name="nextIndex"/>.</summary>
    private void ResetLog(long nextIndex)
    {
        WritePending();
        var deleted = _segments.Count;
        _filesLock.EnterWriteLock();
        try
        {
            _current?.Dispose();
            _current = null;
            while (_segments.Count > 0)
            {
                DeleteSegment(_segments[^1]);
                lock (_segmentsLock)
                {
                    _segments.RemoveAt(_segments.Count - 1);
                }
            }

            _writtenIndex = nextIndex - 1;
            lock (_segmentsLock)
            {
                _readableIndex = _writtenIndex;
            }
        }
        finally
        {
            _filesLock.ExitWriteLock();
        }

        if (_options.FsyncPolicy != FsyncPolicy.Never)
        {
            DiskFiles.FsyncDirectory(_directory);
        }

        // Nothing unsynced remains: the data went with the files.
        Volatile.Write(ref _unsynced, 0);
        Interlocked.Add(ref _removedSegments, deleted);
        Interlocked.Exchange(ref _lastIndex, _writtenIndex);
        Interlocked.Exchange(ref _durableIndex, _writtenIndex);
        Volatile.Write(ref _segmentCount, 0);
        _logger.LogReset(nextIndex, deleted);
    }

    /// <summary>Closes readers' handle on the segment and deletes its file. Under the exclusive files lock, so no read is using it.</summary>
    private void DeleteSegment(Segment segment)
    {
        lock (_segmentsLock)
        {
            _readHandles.Close(segment);
        }

        File.Delete(segment.Path);
    }

    private void WritePending()
    {
        if (_pending.WrittenCount == 0)
        {
            return;
        }

        var segment = _segments[^1];
        RandomAccess.Write(_current!, _pending.WrittenSpan, segment.Length);
        lock (_segmentsLock)
        {
            // Published only now that the bytes are in the file: readers never look past them.
            segment.Length += _pending.WrittenCount;
            var offsets = segment.Offsets!;
            segment.Count = offsets.Count;
            var sparse = segment.Sparse!;
            for (var k = sparse.Count * Segment.SparseEvery; k < offsets.Count; k += Segment.SparseEvery)
            {
                sparse.Add(offsets[k]);
            }

            _readableIndex = _writtenIndex;
        }

        Interlocked.Add(ref _bytesWritten, _pending.WrittenCount);
        _pending.ResetWrittenCount();
        Volatile.Write(ref _unsynced, 1);
        Interlocked.Exchange(ref _lastIndex, _writtenIndex);
        if (_options.FsyncPolicy == FsyncPolicy.Never)
        {
            Interlocked.Exchange(ref _durableIndex, _writtenIndex);
        }
    }

    private void FsyncCurrent()
    {
        _options.BeforeFsync?.Invoke();
        var started = Stopwatch.GetTimestamp();
        if (_current is not null)
        {
            RandomAccess.FlushToDisk(_current);
        }

        var ticks = Stopwatch.GetTimestamp() - started;
        Volatile.Write(ref _unsynced, 0);
        Interlocked.Increment(ref _fsyncCount);
        Interlocked.Add(ref _fsyncTicksTotal, ticks);
        Interlocked.Exchange(ref _fsyncTicksLast, ticks);
        Interlocked.Exchange(ref _durableIndex, _writtenIndex);
    }

    private void AnswerSyncs()
    {
        if (!_syncWanted)
        {
            return;
        }

        if (_options.FsyncPolicy == FsyncPolicy.Always && Volatile.Read(ref _unsynced) != 0)
        {
            FsyncCurrent();
        }

        _syncWanted = false;

        // Never report past what was written: a request beyond the end would be a caller's bug.
        var through = Math.Min(_syncThrough, _writtenIndex);
        if (_options.Synced is { } synced)
        {
            try
            {
                synced(through, _syncGeneration);
            }
            catch (Exception e)
            {
                _logger.CallbackFailed(e, nameof(DurableLogOptions.Synced));
            }
        }
    }

    private void Fail(StorageException fault)
    {
        lock (_enqueueLock)
        {
            if (_fault is not null)
            {
                return;
            }

            _fault = fault;
            _queue.Writer.TryComplete();
        }

        _logger.LogFaulted(fault.InnerException ?? fault, _directory, fault.Message);
        if (_options.Faulted is { } faulted)
        {
            try
            {
                faulted(fault);
            }
            catch (Exception e)
            {
                _logger.CallbackFailed(e, nameof(DurableLogOptions.Faulted));
            }
        }
    }

    // ------------------------------------------------------------------ batch timer

    private async Task RunBatchTimerAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.BatchInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                // One tick in the queue at a time, and none while nothing waits for an fsync.
                if (Volatile.Read(ref _unsynced) != 0 && Interlocked.Exchange(ref _tickQueued, 1) == 0 &&
                    !_queue.Writer.TryWrite(new Work(WorkKind.FsyncTick, null, 0, 0)))
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Disposed.
        }
    }

    private readonly record struct Work(WorkKind Kind, LogEntry[]? Entries, long A, long B, SnapshotInstaller? Received = null);
}

// The log is one type split by concern: this file holds its state, the calls that queue work for the writer and
// disposal; DurableLog.Opening.cs opens and recovers, DurableLog.Reading.cs reads entries back, DurableLog.Writer.cs
// is the writer task, DurableLog.Removal.cs cuts and deletes segments. The record format lives in LogRecord.cs,
// record reading in RecordCursor.cs and start-up recovery in LogRecovery.cs.
using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
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
public sealed partial class DurableLog : IAsyncDisposable
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

    /// <summary>Held by whoever changes the writer's state: the writer task for a batch, or a caller writing at once (AppendAndSync).</summary>
    private readonly Lock _writeLock = new();

    /// <summary>Guards the segment list and each segment's published Length/Count/Sparse, and the read handles.</summary>
    private readonly Lock _segmentsLock = new();

    /// <summary>Readers hold it shared while they read files; the writer holds it exclusively to cut or delete files.</summary>
    private readonly ReaderWriterLockSlim _filesLock = new(LockRecursionPolicy.NoRecursion);

    private readonly SegmentHandles _readHandles;

    // Writer state: touched only by the writer task once the constructor has returned, except the segment list,
    // which the writer changes (and readers read) under _segmentsLock.
    private readonly List<Segment> _segments;
    private readonly ArrayBufferWriter<byte> _pending = new(64 * 1024);

    // The records in _pending (all of the open segment's), and the sparse offsets among them: published to the
    // segment with the bytes, so a reader never finds an offset of a record not yet in the file.
    private readonly List<long> _pendingSparse = [];
    private int _pendingRecords;
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

    // Work items in the queue that the writer has not taken yet (all enqueued under _enqueueLock but the batch timer's ticks).
    private int _queued;
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

    /// <summary>What each segment keeps in memory, oldest first (for tests: no segment, open or sealed, holds an offset per entry).</summary>
    internal List<(long FirstIndex, long Count, int? Sparse)> SegmentMemory()
    {
        lock (_segmentsLock)
        {
            return [.. _segments.Select(s => (s.FirstIndex, s.Count, s.Sparse?.Count))];
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
            var expected = CheckContinues(entries);

            // A pooled copy, returned by the writer: a catching-up backup appends a frame of thousands of entries at
            // a time, and a fresh array that size went to the large object heap, tens of MiB a second of it.
            var copy = ArrayPool<LogEntry>.Shared.Rent(entries.Length);
            entries.CopyTo(copy);
            try
            {
                Enqueue(new Work(WorkKind.Append, copy, entries.Length, 0));
            }
            catch
            {
                ArrayPool<LogEntry>.Shared.Return(copy, clearArray: true);
                throw;
            }

            _enqueuedLastIndex = expected - 1;
        }
    }

    /// <summary>The index after the last of <paramref name="entries"/>; throws unless they continue what was appended and each fits a record.</summary>
    private long CheckContinues(ReadOnlySpan<LogEntry> entries)
    {
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

        return expected;
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
        var started = Stopwatch.GetTimestamp();
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

        var took = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        _logger.EpochSaved(epoch, took);
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
        Interlocked.Increment(ref _queued);
        if (!_queue.Writer.TryWrite(work))
        {
            // The writer completed the queue: it failed between our check and now.
            throw _fault ?? (Exception)new ObjectDisposedException(nameof(DurableLog));
        }
    }

    /// <summary>One queued step. For <see cref="WorkKind.Append"/>, <see cref="Entries"/> is a pooled array holding <see cref="A"/> entries.</summary>
    private readonly record struct Work(WorkKind Kind, LogEntry[]? Entries, long A, long B, SnapshotInstaller? Received = null);
}

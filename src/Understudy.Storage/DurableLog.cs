// Longer than the usual 500 lines on purpose: the writer task, segment rolling, truncation and fsync share the open
// segment and the work queue. The record format lives in LogRecord.cs and start-up recovery in LogRecovery.cs.
using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using Understudy.Protocol;

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

    // Writer state: touched only by the writer task once the constructor has returned.
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

    private DurableLog(string directory, DurableLogOptions options, ILogger logger, FolderLock folderLock, RecoveredLog recovered, long epoch)
    {
        _directory = directory;
        _options = options;
        _logger = logger;
        _folderLock = folderLock;
        _segments = recovered.Segments;
        RecoveredEntries = recovered.Entries;
        RecoveredEpoch = epoch;
        _savedEpoch = epoch;

        var last = recovered.Entries.Count == 0 ? 0 : recovered.Entries[^1].Index;
        _writtenIndex = last;
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
    }

    /// <summary>The data folder (full path).</summary>
    public string Directory => _directory;

    /// <summary>The log as recovered at open: indices from 1, contiguous, commands copied out of the files. For the server core's constructor.</summary>
    public IReadOnlyList<LogEntry> RecoveredEntries { get; }

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
    public DurableLogStats Stats => new(
        Interlocked.Read(ref _bytesWritten),
        Interlocked.Read(ref _fsyncCount),
        Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _fsyncTicksTotal)),
        Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _fsyncTicksLast)),
        Volatile.Read(ref _segmentCount),
        Interlocked.Read(ref _lastIndex),
        Interlocked.Read(ref _durableIndex));

    /// <summary>
    /// Opens (creating if needed) the log in <paramref name="directory"/>, locks the folder against any other
    /// process, and recovers: every record is checked, a torn tail of the last segment is cut off (and
    /// logged), and damage anywhere else throws.
    /// </summary>
    /// <exception cref="StorageException">The folder is in use, unreadable, or holds a damaged log; the message says how to fix it.</exception>
    public static DurableLog Open(string directory, DurableLogOptions options, ILogger? logger = null)
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
            var recovered = LogRecovery.Recover(full, logger);
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

            var log = new DurableLog(full, options, logger, folderLock, recovered, epoch);
            var elapsedMs = (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            logger.LogRecovered(recovered.Entries.Count, log._writtenIndex, recovered.Segments.Count, full, epoch, elapsedMs);
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

        segment.Offsets.Add(segment.Length + _pending.WrittenCount);
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

        var segment = new Segment(_directory, firstIndex);
        _current = File.OpenHandle(segment.Path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
        _segments.Add(segment);
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

        // Delete whole segments from the newest back, so a crash part-way leaves a prefix of the log.
        var deleted = 0;
        while (_segments.Count > 0 && _segments[^1].FirstIndex >= fromIndex)
        {
            _current?.Dispose();
            _current = null;
            File.Delete(_segments[^1].Path);
            _segments.RemoveAt(_segments.Count - 1);
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
            var keep = (int)(fromIndex - segment.FirstIndex);
            if (keep < segment.Offsets.Count)
            {
                segment.Length = segment.Offsets[keep];
                segment.Offsets.RemoveRange(keep, segment.Offsets.Count - keep);
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
        Interlocked.Exchange(ref _lastIndex, _writtenIndex);
        Interlocked.Exchange(ref _durableIndex, Math.Min(Interlocked.Read(ref _durableIndex), _writtenIndex));
        Volatile.Write(ref _segmentCount, _segments.Count);
        _logger.LogTruncated(fromIndex, deleted);
    }

    private void WritePending()
    {
        if (_pending.WrittenCount == 0)
        {
            return;
        }

        var segment = _segments[^1];
        RandomAccess.Write(_current!, _pending.WrittenSpan, segment.Length);
        segment.Length += _pending.WrittenCount;
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

    private readonly record struct Work(WorkKind Kind, LogEntry[]? Entries, long A, long B);
}

// The writer task: it alone appends, rolls segments, writes, fsyncs and answers sync requests.
using System.Buffers;
using System.Diagnostics;
using Understudy.Protocol;

namespace Understudy.Storage;

public sealed partial class DurableLog
{
    // ------------------------------------------------------------------ writer

    private async Task RunWriterAsync()
    {
        var reader = _queue.Reader;
        try
        {
            // After a fault (here or in SaveEpoch) nothing more is written or reported.
            while (_fault is null && await reader.WaitToReadAsync())
            {
                // Taken and done under the write lock, so a write on the caller's thread (AppendAndSync) happens either
                // wholly before this batch or after it, never in the middle of the writer's state.
                lock (_writeLock)
                {
                    var taken = 0;
                    while (_fault is null && taken < MaxItemsPerBatch && reader.TryRead(out var work))
                    {
                        Interlocked.Decrement(ref _queued);
                        Apply(work);
                        taken++;
                    }

                    if (_fault is null)
                    {
                        WritePending();
                        AnswerSyncs();
                    }
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
                foreach (ref readonly var entry in work.Entries.AsSpan(0, (int)work.A))
                {
                    AppendOne(entry);
                }

                // Cleared: the pool must not keep the commands alive.
                ArrayPool<LogEntry>.Shared.Return(work.Entries!, clearArray: true);

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

        // Only every SparseEvery-th offset is kept, for the open segment as for a sealed one: a list of every
        // record's offset (8 bytes a record, about 8 MiB for a segment of 64-byte writes) was dropped at each seal,
        // and its doubling arrays were most of what reached the large object heap in steady state.
        if ((segment.Count + _pendingRecords) % Segment.SparseEvery == 0)
        {
            _pendingSparse.Add(segment.Length + _pending.WrittenCount);
        }

        _pendingRecords++;
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

        if (_pendingRecords != 0)
        {
            throw new InvalidOperationException($"Invariant: {_pendingRecords} records still pending when segment {firstIndex} is started; they belong to the one before it.");
        }

        var segment = new Segment(_directory, firstIndex) { Sparse = [] };
        _current = File.OpenHandle(segment.Path, FileMode.Create, FileAccess.ReadWrite, FileShare.Read);
        lock (_segmentsLock)
        {
            // The segment before it is sealed as it is: its sparse index is complete (WritePending keeps it so).
            _segments.Add(segment);
        }

        if (_options.FsyncPolicy != FsyncPolicy.Never)
        {
            DiskFiles.FsyncDirectory(_directory);
        }

        Volatile.Write(ref _segmentCount, _segments.Count);
        _logger.SegmentCreated(segment.Path);
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
            segment.Count += _pendingRecords;
            segment.Sparse!.AddRange(_pendingSparse);
            _readableIndex = _writtenIndex;
        }

        _pendingRecords = 0;
        _pendingSparse.Clear();

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
                if (Volatile.Read(ref _unsynced) != 0 && Interlocked.Exchange(ref _tickQueued, 1) == 0)
                {
                    Interlocked.Increment(ref _queued);
                    if (!_queue.Writer.TryWrite(new Work(WorkKind.FsyncTick, null, 0, 0)))
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Disposed.
        }
    }
}

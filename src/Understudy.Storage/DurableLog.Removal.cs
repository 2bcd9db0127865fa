// The writer's destructive steps: truncation, compaction of old segments and a whole-log reset. Each waits
// for reads in progress (the exclusive files lock) so a read never sees a file cut or deleted under it.

using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage;

public sealed partial class DurableLog
{
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

                // The open segment always has its sparse index (the writer adds to it); a sealed segment that becomes
                // the open one again may have none yet, and the cut is found from it.
                var sparseIndex = SparseIndexOf(segment, _current, segment.Length);
                var keep = fromIndex - segment.FirstIndex;
                if (keep < segment.Count)
                {
                    var cut = OffsetOf(segment, _current, sparseIndex, keep);
                    lock (_segmentsLock)
                    {
                        var sparse = segment.Sparse!;
                        var kept = (int)((keep + Segment.SparseEvery - 1) / Segment.SparseEvery);
                        sparse.RemoveRange(kept, sparse.Count - kept);
                        segment.Length = cut;
                        segment.Count = keep;
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

    /// <summary>
    /// Where record <paramref name="keep"/> of <paramref name="segment"/> (counting from 0) starts: read forward from
    /// the sparse offset before it, checking each record, as a read does. Writer only, under the exclusive files lock.
    /// </summary>
    private static long OffsetOf(Segment segment, SafeFileHandle handle, List<long> sparse, long keep)
    {
        var k = (int)(keep / Segment.SparseEvery);
        var target = segment.FirstIndex + keep;
        using var cursor = new RecordCursor(handle, segment.Path, sparse[k], segment.Length, segment.FirstIndex + ((long)k * Segment.SparseEvery));
        while (cursor.Index < target)
        {
            if (!cursor.Next(out _))
            {
                throw new StorageException(
                    $"Segment '{segment.Path}' ends at byte {segment.Length} before index {cursor.Index}, which it should hold (it holds through {segment.LastIndex}). {LogRecovery.Remedy}");
            }
        }

        return cursor.Offset;
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
}

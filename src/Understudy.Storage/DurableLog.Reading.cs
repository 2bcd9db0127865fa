// Reading entries back from the segment files, from any thread, while the writer appends.
using Microsoft.Win32.SafeHandles;
using Understudy.Protocol;

namespace Understudy.Storage;

public sealed partial class DurableLog
{
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
        var sink = new EntrySink(maxCount);
        ReadRecords(from, maxCount, maxBytes, sink);
        return [.. sink.Entries];
    }

    /// <summary>
    /// As <see cref="Read"/>, but the entries come back in their wire encoding: each checked record's bytes after its
    /// header and index, copied as they are (no entry decoded, no command copied out): what a primary sends a backup
    /// catching up from disk.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="from"/> is below <see cref="FirstIndex"/> (removed by compaction).</exception>
    /// <exception cref="StorageException">A record on disk is damaged, or the disk failed; the message says where.</exception>
    public EncodedEntries ReadEncoded(long from, int maxCount, int maxBytes)
    {
        var sink = new WireSink(maxBytes);
        try
        {
            ReadRecords(from, maxCount, maxBytes, sink);
            return sink.ToEncoded();
        }
        finally
        {
            sink.Dispose();
        }
    }

    /// <summary>
    /// As <see cref="ReadEncoded(long, int, int)"/>, but the bytes go into <paramref name="buffer"/> (replaced by a
    /// larger array when a run needs more) rather than a new array: the run is good only until the buffer is used
    /// again. For a reader that has sent each run before it reads the next (a primary's catch-up, on its loop):
    /// an array per frame, about 1 MiB, went to the large object heap about a hundred times a second at a catch-up's
    /// pace, and the collector kept that memory after the catch-up.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="from"/> is below <see cref="FirstIndex"/> (removed by compaction).</exception>
    /// <exception cref="StorageException">A record on disk is damaged, or the disk failed; the message says where.</exception>
    public EncodedEntries ReadEncoded(long from, int maxCount, int maxBytes, ref byte[] buffer)
    {
        var initial = WireSink.InitialBytes(maxBytes);
        if (buffer.Length < initial)
        {
            buffer = new byte[initial];
        }

        var sink = new WireSink(buffer);
        try
        {
            ReadRecords(from, maxCount, maxBytes, sink);
            return sink.ToEncoded();
        }
        finally
        {
            buffer = sink.Buffer;
        }
    }

    private void ReadRecords(long from, int maxCount, int maxBytes, RecordSink result)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        ObjectDisposedException.ThrowIf(_disposed, this);

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
    private bool ReadSegment(Segment segment, SafeFileHandle handle, long from, long last, int maxCount, int maxBytes, RecordSink result, ref long bytes)
    {
        // Read from the sparse offset at or before `from`.
        var k = (int)((from - segment.FirstIndex) / Segment.SparseEvery);
        var startIndex = segment.FirstIndex + ((long)k * Segment.SparseEvery);
        long start;
        long limit;

        // Under the lock: the writer adds to the open segment's list and its length.
        lock (_segmentsLock)
        {
            limit = segment.Length;
            start = segment.Sparse is { } sparse ? sparse[k] : -1;
        }

        if (start < 0)
        {
            // A segment recovery only listed (sealed, so its list no longer changes): index it once.
            start = SparseIndexOf(segment, handle, limit)[k];
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

            result.Add(cursor, record);
            bytes += record.Length;
            if (result.Count >= maxCount || bytes >= maxBytes)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The sparse index of <paramref name="segment"/>, built and published now (reading its first
    /// <paramref name="length"/> bytes, checking every record) for a segment sealed since recovery and never read:
    /// by the first read that needs it, or by a truncation that makes it the open segment again.
    /// </summary>
    private List<long> SparseIndexOf(Segment segment, SafeFileHandle handle, long length)
    {
        lock (_segmentsLock)
        {
            if (segment.Sparse is { } known)
            {
                return known;
            }
        }

        var sparse = IndexSegment(segment, handle, length);
        lock (_segmentsLock)
        {
            segment.Sparse ??= sparse;
            return segment.Sparse;
        }
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
}

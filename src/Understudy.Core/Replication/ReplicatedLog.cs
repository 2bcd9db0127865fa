using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// A server's log, indexed from 1. Epochs never decrease along it, which lets the conflict lookups binary-search.
/// Only a window of recent entries lives in memory: everything not yet committed and durable, plus a bounded tail
/// (<see cref="ServerOptions.LogWindowEntries"/>, <see cref="ServerOptions.LogWindowBytes"/>). Older entries are read
/// back from the <see cref="ILogArchive"/> (the log on disk) on demand, so memory does not grow with the log.
/// </summary>
/// <remarks>
/// Below <see cref="FirstIndex"/> the entries are gone (compacted under a snapshot); the snapshot's index and epoch
/// stay known as the <em>base</em>, so a frame whose previous entry is the snapshot's last one can still be matched.
/// </remarks>
public sealed class ReplicatedLog : ILogReader
{
    // Entries live in fixed-size chunks (1024 entries each, below the large-object threshold) rather than one List:
    // a List doubles into a new array and copies everything, and at a million 64-byte writes that is a 134 MB
    // large-object allocation and a 67 MB copy at the same index on every server at once, a stall long enough
    // (seen: 300-380 ms) for the primary to ask both backups out of the in-sync set. Chunks also let the window
    // drop its oldest entries a chunk at a time.
    private const int ChunkShift = 10;
    private const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;

    private readonly List<LogEntry[]> _chunks = [];

    // The last chunk the window evicted, cleared, for the next one it needs: a chunk lives as long as the window holds its
    // entries, long enough to reach the oldest generation, so one fresh chunk per 1,024 entries was that much garbage for
    // full collections to find (a backup catching up appends several hundred thousand entries a second).
    private LogEntry[]? _spareChunk;
    private readonly List<long> _chunkBytes = [];
    private readonly ILogArchive? _archive;
    private readonly int _windowEntries;
    private readonly long _windowBytes;

    // Zero-based position (index - 1) of the first slot of _chunks[0]; a multiple of ChunkSize.
    private long _chunkBase;

    // First index held in memory; entries in [_windowStart, _count] are in the chunks.
    private long _windowStart = 1;
    private long _count;
    private long _bytesInWindow;
    private long _baseIndex;
    private long _baseEpoch;

    // The lowest index this log may hold: after a snapshot install, what the archive still has below it is an older
    // log, removed by the reset (maybe not yet on disk), and must never be read back.
    private long _floor = 1;

    public ReplicatedLog()
        : this([])
    {
    }

    public ReplicatedLog(IEnumerable<LogEntry> recovered)
        : this(0, 0, recovered, null, int.MaxValue, long.MaxValue)
    {
    }

    /// <summary>
    /// A log whose entries through <paramref name="baseIndex"/> (of <paramref name="baseEpoch"/>) are under a snapshot,
    /// followed by <paramref name="tail"/> (from <paramref name="baseIndex"/> + 1); entries below the tail come from
    /// <paramref name="archive"/>.
    /// </summary>
    public ReplicatedLog(long baseIndex, long baseEpoch, IEnumerable<LogEntry> tail, ILogArchive? archive, int windowEntries, long windowBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(baseIndex);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowEntries, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowBytes, 1);
        _archive = archive;
        _windowEntries = windowEntries;
        _windowBytes = windowBytes;
        _baseIndex = baseIndex;
        _baseEpoch = baseEpoch;
        _count = baseIndex;
        _windowStart = baseIndex + 1;
        _chunkBase = baseIndex & ~(long)ChunkMask;
        foreach (var e in tail)
        {
            Append(e);
        }
    }

    /// <summary>The oldest entry that can still be read (from memory or disk).</summary>
    public long FirstIndex => _archive is { } a ? Math.Max(_floor, Math.Min(_windowStart, Math.Max(a.FirstIndex, 1))) : _windowStart;

    /// <summary>The first entry held in memory.</summary>
    public long WindowStart => _windowStart;

    /// <summary>Entries held in memory.</summary>
    public long WindowCount => _count - _windowStart + 1;

    /// <summary>Bytes (wire size) of the entries held in memory.</summary>
    public long WindowBytes => _bytesInWindow;

    /// <summary>The last entry covered by the snapshot the log starts after (0 if none).</summary>
    public long BaseIndex => _baseIndex;

    public long LastIndex => _count;

    public long LastEpoch => _count == 0 ? 0 : EpochAt(_count);

    /// <summary>
    /// The highest log time of any entry appended (Unix ms; 0 if none): a primary stamps new entries no lower. Kept
    /// through truncation, which only makes it err high, and log time only has to never decrease.
    /// </summary>
    public long HighestLogTimeMs { get; private set; }

    public LogEntry this[long index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(index, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(index, _count);
            if (index >= _windowStart)
            {
                return Slot(index - 1);
            }

            var read = ReadArchive(index, 1, int.MaxValue);
            return read[0];
        }
    }

    /// <summary>
    /// The epoch of the entry at <paramref name="index"/>; 0 for index 0 (the empty prefix). Below the window it is read
    /// from disk; at the snapshot's edge it is the snapshot's epoch.
    /// </summary>
    public long EpochAt(long index)
    {
        if (index == 0)
        {
            return 0;
        }

        if (index >= _windowStart && index <= _count)
        {
            return Slot(index - 1).Epoch;
        }

        // The snapshot's edge: its epoch is known from the snapshot, whether or not the entry is still on disk.
        if (index == _baseIndex)
        {
            return _baseEpoch;
        }

        return this[index].Epoch;
    }

    /// <summary>True when the epoch of <paramref name="index"/> is known: readable, or the snapshot's edge.</summary>
    public bool KnowsEpochAt(long index) => index == 0 || (index >= FirstIndex && index <= _count) || index == _baseIndex;

    /// <summary>
    /// True when a frame with previous entry <paramref name="prevIndex"/> can be built: its epoch is known and every
    /// entry after it is still readable. False means only a snapshot can bring that follower up to date.
    /// </summary>
    public bool CanReplicateAfter(long prevIndex) => prevIndex + 1 >= FirstIndex && KnowsEpochAt(prevIndex);

    /// <summary>The lowest previous index a frame can be built on (see <see cref="CanReplicateAfter"/>).</summary>
    public long LowestReplicablePrev => KnowsEpochAt(FirstIndex - 1) ? FirstIndex - 1 : FirstIndex;

    public void Append(in LogEntry entry)
    {
        if (entry.Index != LastIndex + 1)
        {
            throw new InvalidOperationException($"log append out of order: last index {LastIndex}, entry {entry.Index}");
        }

        if (entry.Epoch < LastEpoch)
        {
            throw new InvalidOperationException($"log append with epoch {entry.Epoch} after epoch {LastEpoch}");
        }

        var position = _count;
        if (((position - _chunkBase) >> ChunkShift) == _chunks.Count)
        {
            _chunks.Add(_spareChunk ?? new LogEntry[ChunkSize]);
            _spareChunk = null;
            _chunkBytes.Add(0);
        }

        Slot(position) = entry;
        HighestLogTimeMs = Math.Max(HighestLogTimeMs, entry.LogTimeMs);
        _chunkBytes[ChunkOf(position)] += entry.WireSize;
        _bytesInWindow += entry.WireSize;
        _count++;
    }

    /// <summary>Drops the entries from <paramref name="index"/> on; they must all be in memory (never committed).</summary>
    public void TruncateFrom(long index)
    {
        if (index > LastIndex)
        {
            return;
        }

        if (index < _windowStart)
        {
            throw new InvalidOperationException($"truncating from {index}, below the log's window (starts at {_windowStart}): those entries are committed");
        }

        var keep = Math.Max(0, index - 1);
        for (var i = keep; i < _count; i++)
        {
            ref var slot = ref Slot(i);
            _chunkBytes[ChunkOf(i)] -= slot.WireSize;
            _bytesInWindow -= slot.WireSize;

            // Let go of the dropped commands.
            slot = default;
        }

        _count = keep;
        var chunksNeeded = (int)((keep - _chunkBase + ChunkMask) >> ChunkShift);
        if (_chunks.Count > chunksNeeded)
        {
            _chunks.RemoveRange(chunksNeeded, _chunks.Count - chunksNeeded);
            _chunkBytes.RemoveRange(chunksNeeded, _chunkBytes.Count - chunksNeeded);
        }
    }

    /// <summary>
    /// Lets go of the oldest entries, a chunk at a time, while the window is over its limits; only entries through
    /// <paramref name="throughIndex"/> (committed and durable, hence readable from disk) may go. Without an archive
    /// nothing is evicted: memory is then the only copy.
    /// </summary>
    public void Evict(long throughIndex)
    {
        if (_archive is null)
        {
            return;
        }

        while (_chunks.Count > 1 && (WindowCount > _windowEntries || _bytesInWindow > _windowBytes))
        {
            // The first chunk's last index; evict it whole only when every entry in it may go.
            var chunkEnd = _chunkBase + ChunkSize;
            if (chunkEnd > throughIndex)
            {
                return;
            }

            _bytesInWindow -= _chunkBytes[0];
            _spareChunk = _chunks[0];
            Array.Clear(_spareChunk);
            _chunks.RemoveAt(0);
            _chunkBytes.RemoveAt(0);
            _chunkBase += ChunkSize;
            _windowStart = _chunkBase + 1;
        }
    }

    /// <summary>
    /// Forgets everything through <paramref name="index"/>, now under a snapshot of <paramref name="epoch"/> at that index:
    /// entries there are read from disk until compacted. Used after a snapshot of a prefix this log has.
    /// </summary>
    public void SetBase(long index, long epoch)
    {
        if (index > _baseIndex && index <= _count)
        {
            _baseIndex = index;
            _baseEpoch = epoch;
        }
    }

    /// <summary>
    /// Drops the whole log: it continues at <paramref name="afterIndex"/> + 1, after an installed snapshot's edge
    /// (<paramref name="afterIndex"/>, of <paramref name="epoch"/>). Nothing below is ever read again.
    /// </summary>
    public void ResetTo(long afterIndex, long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(afterIndex);
        _chunks.Clear();
        _chunkBytes.Clear();
        _bytesInWindow = 0;
        _count = afterIndex;
        _windowStart = afterIndex + 1;
        _chunkBase = afterIndex & ~(long)ChunkMask;
        _baseIndex = afterIndex;
        _baseEpoch = epoch;
        _floor = afterIndex + 1;
    }

    /// <summary>Copies up to <paramref name="maxCount"/> entries (and about <paramref name="maxBytes"/>) from <paramref name="from"/>.</summary>
    public LogEntry[] Slice(long from, int maxCount, int maxBytes)
    {
        if (from > LastIndex || maxCount <= 0)
        {
            return [];
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        if (from < _windowStart)
        {
            // Older entries come from disk, up to the window's start (the caller asks again for the rest).
            return ReadArchive(from, (int)Math.Min(maxCount, _windowStart - from), maxBytes);
        }

        var start = from - 1;
        var count = 0;
        var bytes = 0;
        var limit = (int)Math.Min(maxCount, LastIndex - from + 1);
        while (count < limit)
        {
            bytes += Slot(start + count).WireSize;
            count++;
            if (bytes >= maxBytes)
            {
                break;
            }
        }

        var slice = new LogEntry[count];
        var copied = 0;
        while (copied < count)
        {
            var at = start + copied;
            var chunk = _chunks[ChunkOf(at)];
            var offset = (int)(at & ChunkMask);
            var n = Math.Min(count - copied, ChunkSize - offset);
            Array.Copy(chunk, offset, slice, copied, n);
            copied += n;
        }

        return slice;
    }

    /// <summary>
    /// As <see cref="Slice"/> for entries below the window, in their wire encoding straight from the archive (a backlog
    /// sent to a backup catching up: no entry decoded and encoded again); false when <paramref name="from"/> is in the
    /// window or the archive cannot (then <see cref="Slice"/>).
    /// </summary>
    public bool TrySliceEncoded(long from, int maxCount, int maxBytes, out EncodedEntries run)
    {
        run = default;
        if (from >= _windowStart || from > LastIndex || maxCount <= 0 || _archive is null)
        {
            return false;
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        if (from < _archive.FirstIndex || from < _floor)
        {
            throw new InvalidOperationException($"log entry {from} is no longer held (first index {FirstIndex}, window from {_windowStart})");
        }

        if (!_archive.TryReadEncoded(from, (int)Math.Min(maxCount, _windowStart - from), maxBytes, out run))
        {
            return false;
        }

        if (run.Count == 0)
        {
            throw new InvalidOperationException($"the log on disk did not return entry {from} (got nothing)");
        }

        return true;
    }

    /// <inheritdoc />
    LogEntry[] ILogReader.Read(long from, int maxCount, int maxBytes) => Slice(from, maxCount, maxBytes);

    /// <summary>The first index holding <paramref name="epoch"/>, searching at or before <paramref name="atOrBefore"/> (no lower than <see cref="FirstIndex"/>).</summary>
    public long FirstIndexOfEpoch(long epoch, long atOrBefore)
    {
        long lo = FirstIndex, hi = Math.Min(atOrBefore, LastIndex), found = atOrBefore;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) / 2);
            if (EpochAt(mid) >= epoch)
            {
                found = mid;
                hi = mid - 1;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return found;
    }

    /// <summary>The last index holding <paramref name="epoch"/>, or 0 when the log (from <see cref="FirstIndex"/>, or its snapshot's edge) has none of it.</summary>
    public long LastIndexOfEpoch(long epoch)
    {
        long lo = FirstIndex, hi = LastIndex, found = 0;
        while (lo <= hi)
        {
            var mid = lo + ((hi - lo) / 2);
            if (EpochAt(mid) <= epoch)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        if (found > 0)
        {
            return EpochAt(found) == epoch ? found : 0;
        }

        // Nothing readable at or below the epoch: the snapshot's edge may still hold it.
        return _baseIndex > 0 && _baseIndex < FirstIndex && _baseEpoch == epoch ? _baseIndex : 0;
    }

    /// <summary>Entries from <paramref name="from"/> to <paramref name="to"/>, inclusive (no lower than <see cref="FirstIndex"/>).</summary>
    public IEnumerable<LogEntry> Range(long from, long to)
    {
        var next = Math.Max(FirstIndex, from);
        var last = Math.Min(to, LastIndex);
        while (next <= last)
        {
            var batch = Slice(next, (int)Math.Min(ChunkSize, last - next + 1), 4 * 1024 * 1024);
            foreach (var e in batch)
            {
                yield return e;
            }

            next += batch.Length;
        }
    }

    private LogEntry[] ReadArchive(long from, int maxCount, int maxBytes)
    {
        if (_archive is null || from < _archive.FirstIndex || from < _floor)
        {
            throw new InvalidOperationException($"log entry {from} is no longer held (first index {FirstIndex}, window from {_windowStart})");
        }

        var read = _archive.Read(from, maxCount, maxBytes);
        if (read.Length == 0 || read[0].Index != from)
        {
            throw new InvalidOperationException($"the log on disk did not return entry {from} (got {(read.Length == 0 ? "nothing" : read[0].ToString())})");
        }

        return read;
    }

    private int ChunkOf(long position) => (int)((position - _chunkBase) >> ChunkShift);

    /// <summary>The slot of the entry at zero-based position <paramref name="position"/> (no bounds check beyond the chunk's).</summary>
    private ref LogEntry Slot(long position) => ref _chunks[ChunkOf(position)][position & ChunkMask];
}

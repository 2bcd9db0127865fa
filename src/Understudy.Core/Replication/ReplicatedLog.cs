using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// A server's log in memory, indexed from 1. Epochs never decrease along it, which lets the
/// conflict lookups binary-search. Storage adapters keep the durable copy; this is the working copy.
/// </summary>
public sealed class ReplicatedLog
{
    // Entries live in fixed-size chunks (64 KiB each, below the large-object threshold) rather than one List:
    // a List doubles into a new array and copies everything, and at a million 64-byte writes that is a 134 MB
    // large-object allocation and a 67 MB copy at the same index on every server at once, a stall long enough
    // (seen: 300-380 ms) for the primary to ask both backups out of the in-sync set.
    private const int ChunkShift = 10;
    private const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;

    private readonly List<LogEntry[]> _chunks = [];
    private long _count;

    public ReplicatedLog()
    {
    }

    public ReplicatedLog(IEnumerable<LogEntry> recovered)
    {
        foreach (var e in recovered)
        {
            Append(e);
        }
    }

    public long LastIndex => _count;

    public long LastEpoch => _count == 0 ? 0 : Slot(_count - 1).Epoch;

    public LogEntry this[long index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(index, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(index, _count);
            return Slot(index - 1);
        }
    }

    /// <summary>The epoch of the entry at <paramref name="index"/>; 0 for index 0 (the empty prefix).</summary>
    public long EpochAt(long index) => index == 0 ? 0 : this[index].Epoch;

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

        if ((_count >> ChunkShift) == _chunks.Count)
        {
            _chunks.Add(new LogEntry[ChunkSize]);
        }

        Slot(_count) = entry;
        _count++;
    }

    /// <summary>Drops the entries from <paramref name="index"/> on.</summary>
    public void TruncateFrom(long index)
    {
        if (index > LastIndex)
        {
            return;
        }

        var keep = Math.Max(0, index - 1);
        for (var i = keep; i < _count; i++)
        {
            // Let go of the dropped commands.
            Slot(i) = default;
        }

        _count = keep;
        var chunksNeeded = (int)((keep + ChunkMask) >> ChunkShift);
        if (_chunks.Count > chunksNeeded)
        {
            _chunks.RemoveRange(chunksNeeded, _chunks.Count - chunksNeeded);
        }
    }

    /// <summary>Copies up to <paramref name="maxCount"/> entries (and about <paramref name="maxBytes"/>) from <paramref name="from"/>.</summary>
    public LogEntry[] Slice(long from, int maxCount, int maxBytes)
    {
        if (from > LastIndex)
        {
            return [];
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
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
            var chunk = _chunks[(int)(at >> ChunkShift)];
            var offset = (int)(at & ChunkMask);
            var n = Math.Min(count - copied, ChunkSize - offset);
            Array.Copy(chunk, offset, slice, copied, n);
            copied += n;
        }

        return slice;
    }

    /// <summary>The first index holding <paramref name="epoch"/>, searching at or before <paramref name="atOrBefore"/>.</summary>
    public long FirstIndexOfEpoch(long epoch, long atOrBefore)
    {
        long lo = 1, hi = Math.Min(atOrBefore, LastIndex), found = atOrBefore;
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

    /// <summary>The last index holding <paramref name="epoch"/>, or 0 when the log has none of it.</summary>
    public long LastIndexOfEpoch(long epoch)
    {
        long lo = 1, hi = LastIndex, found = 0;
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

        return found > 0 && EpochAt(found) == epoch ? found : 0;
    }

    /// <summary>Entries from <paramref name="from"/> to <paramref name="to"/>, inclusive.</summary>
    public IEnumerable<LogEntry> Range(long from, long to)
    {
        for (var i = Math.Max(1, from); i <= Math.Min(to, LastIndex); i++)
        {
            yield return this[i];
        }
    }

    /// <summary>The slot of the entry at zero-based position <paramref name="position"/> (no bounds check beyond the chunk's).</summary>
    private ref LogEntry Slot(long position) => ref _chunks[(int)(position >> ChunkShift)][position & ChunkMask];
}

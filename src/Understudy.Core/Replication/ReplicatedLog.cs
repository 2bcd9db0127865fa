using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// A server's log in memory, indexed from 1. Epochs never decrease along it, which lets the
/// conflict lookups binary-search. Storage adapters keep the durable copy; this is the working copy.
/// </summary>
public sealed class ReplicatedLog
{
    private readonly List<LogEntry> _entries = [];

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

    public long LastIndex => _entries.Count;

    public long LastEpoch => _entries.Count == 0 ? 0 : _entries[^1].Epoch;

    public LogEntry this[long index] => _entries[checked((int)(index - 1))];

    /// <summary>The epoch of the entry at <paramref name="index"/>; 0 for index 0 (the empty prefix).</summary>
    public long EpochAt(long index) => index == 0 ? 0 : _entries[checked((int)(index - 1))].Epoch;

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

        _entries.Add(entry);
    }

    /// <summary>Drops the entries from <paramref name="index"/> on.</summary>
    public void TruncateFrom(long index)
    {
        if (index <= LastIndex)
        {
            _entries.RemoveRange(checked((int)(index - 1)), checked((int)(LastIndex - index + 1)));
        }
    }

    /// <summary>Copies up to <paramref name="maxCount"/> entries (and about <paramref name="maxBytes"/>) from <paramref name="from"/>.</summary>
    public LogEntry[] Slice(long from, int maxCount, int maxBytes)
    {
        if (from > LastIndex)
        {
            return [];
        }

        var start = checked((int)(from - 1));
        var count = 0;
        var bytes = 0;
        var limit = (int)Math.Min(maxCount, LastIndex - from + 1);
        while (count < limit)
        {
            bytes += _entries[start + count].WireSize;
            count++;
            if (bytes >= maxBytes)
            {
                break;
            }
        }

        var slice = new LogEntry[count];
        _entries.CopyTo(start, slice, 0, count);
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
}

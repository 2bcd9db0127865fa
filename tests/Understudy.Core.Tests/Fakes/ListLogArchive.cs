namespace Understudy.Core.Tests.Fakes;

/// <summary>A log "on disk" for tests: every entry written, from <see cref="FirstIndex"/> on, and how often it was read.</summary>
public sealed class ListLogArchive : ILogArchive
{
    private readonly List<LogEntry> _entries = [];

    /// <summary>An empty log whose next entry will be <paramref name="firstIndex"/> (after a snapshot, its index + 1).</summary>
    public ListLogArchive(long firstIndex = 1) => FirstIndex = firstIndex;

    public long FirstIndex { get; private set; }

    public long LastIndex => FirstIndex + _entries.Count - 1;

    public int Reads { get; private set; }

    /// <summary>Hands entries over in their wire encoding, as the segment files do (<see cref="ILogArchive.TryReadEncoded"/>).</summary>
    public bool Encodes { get; init; }

    public bool TryReadEncoded(long from, int maxCount, int maxBytes, out EncodedEntries run)
    {
        run = Encodes ? EncodedEntries.Of(Read(from, maxCount, maxBytes)) : default;
        return Encodes;
    }

    public void Write(in LogEntry entry)
    {
        if (entry.Index <= LastIndex)
        {
            _entries.RemoveRange((int)(entry.Index - FirstIndex), (int)(LastIndex - entry.Index + 1));
        }

        if (_entries.Count == 0 && entry.Index != FirstIndex)
        {
            FirstIndex = entry.Index;
        }

        _entries.Add(entry);
    }

    public void TruncateFrom(long index)
    {
        if (index <= LastIndex)
        {
            var from = (int)Math.Max(0, index - FirstIndex);
            _entries.RemoveRange(from, _entries.Count - from);
        }
    }

    /// <summary>Drops everything: the log continues at <paramref name="afterIndex"/> + 1 (a snapshot was installed).</summary>
    public void ResetTo(long afterIndex)
    {
        _entries.Clear();
        FirstIndex = afterIndex + 1;
    }

    public void RemoveBelow(long index)
    {
        var drop = (int)Math.Clamp(index - FirstIndex, 0, _entries.Count);
        _entries.RemoveRange(0, drop);
        FirstIndex += drop;
    }

    public LogEntry[] Read(long from, int maxCount, int maxBytes)
    {
        Reads++;
        if (from < FirstIndex || from > LastIndex)
        {
            return [];
        }

        var result = new List<LogEntry>();
        var bytes = 0;
        for (var i = from; i <= LastIndex && result.Count < maxCount; i++)
        {
            var e = _entries[(int)(i - FirstIndex)];
            result.Add(e);
            bytes += e.WireSize;
            if (bytes >= maxBytes)
            {
                break;
            }
        }

        return [.. result];
    }
}

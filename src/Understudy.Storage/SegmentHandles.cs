using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage;

/// <summary>
/// Read handles on segment files, kept open between reads, least recently used closed first. A handle in use
/// by a read (rented) is never closed here; the log closes a segment's handle only when no read holds it (it
/// deletes or cuts files under its exclusive files lock). Not thread-safe: the log calls it under its segment lock.
/// </summary>
internal sealed class SegmentHandles(int capacity)
{
    private readonly List<Entry> _entries = [];
    private long _clock;

    /// <summary>Open handles (for tests).</summary>
    public int Count => _entries.Count;

    /// <summary>A handle on <paramref name="segment"/>'s file, opened if needed; give it back with <see cref="Return"/>.</summary>
    public Lease Rent(Segment segment)
    {
        var entry = _entries.Find(e => ReferenceEquals(e.Segment, segment));
        if (entry is null)
        {
            // FileShare.ReadWrite: the writer holds the open segment for writing; Delete: compaction may remove it.
            var handle = File.OpenHandle(segment.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.RandomAccess);
            entry = new Entry(segment, handle);
            _entries.Add(entry);
        }

        // Rented before evicting, so the handle just opened is not the one closed.
        entry.Rented++;
        entry.LastUsed = ++_clock;
        EvictIdle();
        return new Lease(entry);
    }

    public void Return(Lease lease)
    {
        lease.Entry.Rented--;
        if (lease.Entry.Closed && lease.Entry.Rented == 0)
        {
            lease.Entry.Handle.Dispose();
        }

        EvictIdle();
    }

    /// <summary>Closes the handle on <paramref name="segment"/>, if any (its file is about to be deleted).</summary>
    public void Close(Segment segment)
    {
        var i = _entries.FindIndex(e => ReferenceEquals(e.Segment, segment));
        if (i >= 0)
        {
            CloseAt(i);
        }
    }

    public void CloseAll()
    {
        while (_entries.Count > 0)
        {
            CloseAt(_entries.Count - 1);
        }
    }

    private void CloseAt(int i)
    {
        var entry = _entries[i];
        _entries.RemoveAt(i);
        entry.Closed = true;

        // A rented handle is closed by its last Return instead (only possible at dispose).
        if (entry.Rented == 0)
        {
            entry.Handle.Dispose();
        }
    }

    private void EvictIdle()
    {
        while (_entries.Count > capacity)
        {
            var oldest = -1;
            for (var i = 0; i < _entries.Count; i++)
            {
                if (_entries[i].Rented == 0 && (oldest < 0 || _entries[i].LastUsed < _entries[oldest].LastUsed))
                {
                    oldest = i;
                }
            }

            if (oldest < 0)
            {
                return; // every handle is in use; over capacity until some come back
            }

            CloseAt(oldest);
        }
    }

    internal sealed class Entry(Segment segment, SafeFileHandle handle)
    {
        public Segment Segment { get; } = segment;

        public SafeFileHandle Handle { get; } = handle;

        public int Rented { get; set; }

        public long LastUsed { get; set; }

        public bool Closed { get; set; }
    }

    /// <summary>A rented handle.</summary>
    internal readonly struct Lease(Entry entry)
    {
        public Entry Entry { get; } = entry;

        public SafeFileHandle Handle => Entry.Handle;
    }
}

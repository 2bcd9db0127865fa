using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// A server's disk. Writes go to the page cache (pending) and become durable, in order, when a sync
/// completes. A crash keeps the durable image plus a random prefix of the pending writes (the last
/// append possibly torn) and loses the rest, as a real file system may.
/// </summary>
internal sealed class SimDisk
{
    private readonly List<LogEntry> _durable = [];
    private readonly Queue<DiskOp> _pending = new();
    private long _opSeq;

    public long SavedEpoch { get; private set; }

    /// <summary>The id of the last write: a sync requested now covers everything up to it.</summary>
    public long SyncPoint => _opSeq;

    /// <summary>When the last scheduled fsync finishes (fsyncs complete in order).</summary>
    public long LastSyncDone { get; set; }

    public void Append(ReadOnlySpan<LogEntry> entries) => _pending.Enqueue(new DiskOp(++_opSeq, entries.ToArray(), 0));

    public void Truncate(long fromIndex) => _pending.Enqueue(new DiskOp(++_opSeq, null, fromIndex));

    public void SaveEpoch(long epoch) => SavedEpoch = Math.Max(SavedEpoch, epoch);

    /// <summary>Everything written up to <paramref name="throughOp"/> is now on disk.</summary>
    public void MakeDurable(long throughOp)
    {
        while (_pending.Count > 0 && _pending.Peek().Seq <= throughOp)
        {
            Apply(_pending.Dequeue(), int.MaxValue);
        }
    }

    /// <summary>The process died: keep a random prefix of the unsynced writes. Returns how many were lost.</summary>
    public int Crash(Random random)
    {
        var ops = _pending.ToArray();
        _pending.Clear();
        var kept = random.Next(ops.Length + 1);
        for (var i = 0; i < kept; i++)
        {
            // The last surviving append may be torn: only some of its entries reached the disk.
            var limit = i == kept - 1 && ops[i].Entries is { Length: > 1 } e ? random.Next(1, e.Length + 1) : int.MaxValue;
            Apply(ops[i], limit);
        }

        return ops.Length - kept;
    }

    public (long Epoch, List<LogEntry> Entries) Recover() => (SavedEpoch, [.. _durable]);

    private void Apply(DiskOp op, int limit)
    {
        if (op.Entries is null)
        {
            if (op.TruncateFrom <= _durable.Count)
            {
                _durable.RemoveRange((int)(op.TruncateFrom - 1), (int)(_durable.Count - op.TruncateFrom + 1));
            }

            return;
        }

        var count = Math.Min(limit, op.Entries.Length);
        for (var i = 0; i < count; i++)
        {
            var e = op.Entries[i];
            if (e.Index != _durable.Count + 1)
            {
                throw new InvalidOperationException($"simulated disk: entry {e.Index} written after {_durable.Count}; writes must be contiguous");
            }

            _durable.Add(e);
        }
    }

    private sealed record DiskOp(long Seq, LogEntry[]? Entries, long TruncateFrom);
}

/// <summary>
/// The monitor's configuration store: compare-and-set, durable when it answers. A monitor crash with a
/// write in flight leaves either the old or the new configuration (atomic rename), chosen at random.
/// </summary>
internal sealed class SimConfigStore
{
    private readonly List<PendingWrite> _inFlight = [];

    public ClusterConfig Stored { get; private set; } = ClusterConfig.Initial;

    public PendingWrite Begin(long expectedVersion, ClusterConfig next)
    {
        var write = new PendingWrite(expectedVersion, next);
        _inFlight.Add(write);
        return write;
    }

    /// <summary>The write reaches the disk; returns whether the compare-and-set succeeded.</summary>
    public bool Complete(PendingWrite write)
    {
        _inFlight.Remove(write);
        if (write.Abandoned)
        {
            return false;
        }

        if (Stored.Version != write.ExpectedVersion)
        {
            return false;
        }

        Stored = write.Next;
        return true;
    }

    /// <summary>The monitor died: each write in flight either made it to disk or did not.</summary>
    public void Crash(Random random)
    {
        foreach (var write in _inFlight.ToArray())
        {
            if (random.Next(2) == 0)
            {
                Complete(write);
            }

            write.Abandoned = true;
        }

        _inFlight.Clear();
    }

    internal sealed class PendingWrite(long expectedVersion, ClusterConfig next)
    {
        public long ExpectedVersion { get; } = expectedVersion;

        public ClusterConfig Next { get; } = next;

        public bool Abandoned { get; set; }
    }
}

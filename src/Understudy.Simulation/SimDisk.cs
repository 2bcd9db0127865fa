using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// A server's disk. Writes go to the page cache (pending) and become durable, in order, when a sync
/// completes. A crash keeps the durable image plus a random prefix of the pending writes (the last
/// append possibly torn) and loses the rest, as a real file system may. Compactions are writes too (ordered
/// with appends, lost in a crash unless synced). A snapshot is stored whole or not at all (temp file and
/// rename): one whose write had not finished at a crash is lost. It is also the node's <see cref="ILogArchive"/>:
/// durable entries are read back from it.
/// </summary>
internal sealed class SimDisk : ILogArchive
{
    private readonly List<LogEntry> _durable = [];
    private readonly Queue<DiskOp> _pending = new();
    private long _first = 1;
    private long _opSeq;
    private byte[] _encoded = [];

    // A snapshot being received from a primary: a partial file that outlives a restart (a crash may cut its unsynced tail).
    private (long Index, long Epoch, long Total, List<byte> Bytes)? _receiving;

    // A received snapshot, checked, waiting for the log reset that installs it (DurableLog.InstallSnapshot does both at once).
    private ServerSnapshot? _received;

    public long SavedEpoch { get; private set; }

    /// <summary>The newest snapshot stored (null: none).</summary>
    public ServerSnapshot? Snapshot { get; private set; }

    /// <summary>What a restart reads of the stored snapshot (null: what was stored); see <see cref="SimulationOptions.SnapshotOnRestart"/>.</summary>
    public Func<ServerSnapshot, ServerSnapshot>? SnapshotOnRestart { get; init; }

    /// <summary>The oldest durable entry's index (the next one's when the log is empty).</summary>
    public long FirstIndex => _first;

    /// <summary>The id of the last write: a sync requested now covers everything up to it.</summary>
    public long SyncPoint => _opSeq;

    /// <summary>When the last scheduled fsync finishes (fsyncs complete in order).</summary>
    public long LastSyncDone { get; set; }

    private long LastDurable => _first + _durable.Count - 1;

    public void Append(ReadOnlySpan<LogEntry> entries) => _pending.Enqueue(new DiskOp(++_opSeq, entries.ToArray(), 0, 0));

    public void Truncate(long fromIndex) => _pending.Enqueue(new DiskOp(++_opSeq, null, fromIndex, 0));

    public void Compact(long belowIndex) => _pending.Enqueue(new DiskOp(++_opSeq, null, 0, belowIndex));

    public void SaveEpoch(long epoch) => SavedEpoch = Math.Max(SavedEpoch, epoch);

    /// <summary>A snapshot write finished (rename done): it replaces an older one.</summary>
    public void StoreSnapshot(ServerSnapshot snapshot)
    {
        if (Snapshot is not { } current || snapshot.Index > current.Index)
        {
            Snapshot = snapshot;
        }
    }

    /// <summary>Length of the stored snapshot through <paramref name="index"/> as it is streamed (its state bytes); 0 when not stored.</summary>
    public long SnapshotLength(long index) => Snapshot is { } s && s.Index == index ? s.State.Length : 0;

    public int ReadSnapshot(long index, long offset, Span<byte> destination)
    {
        if (Snapshot is not { } s || s.Index != index || offset >= s.State.Length)
        {
            return 0;
        }

        var n = (int)Math.Min(destination.Length, s.State.Length - offset);
        s.State.Span.Slice((int)offset, n).CopyTo(destination);
        return n;
    }

    /// <summary>Starts or resumes receiving a snapshot; returns the bytes already held of it.</summary>
    public long BeginInstall(long index, long epoch, long totalLength)
    {
        if (_receiving is not { } r || r.Index != index || r.Epoch != epoch || r.Total != totalLength)
        {
            _receiving = (index, epoch, totalLength, []);
        }

        return _receiving.Value.Bytes.Count;
    }

    public void WriteChunk(long index, long offset, ReadOnlySpan<byte> chunk)
    {
        if (_receiving is not { } r || r.Index != index || offset != r.Bytes.Count || offset + chunk.Length > r.Total)
        {
            throw new InvalidOperationException($"simulated disk: chunk of snapshot {index} at {offset} does not continue what is held ({_receiving?.Bytes.Count})");
        }

        r.Bytes.AddRange(chunk.ToArray());
    }

    /// <summary>The received snapshot is complete and checked; its state is returned. <see cref="ResetTo"/> installs it.</summary>
    public ReadOnlyMemory<byte>? CompleteInstall(long index)
    {
        if (_receiving is not { } r || r.Index != index || r.Bytes.Count != r.Total)
        {
            return null;
        }

        _receiving = null;
        var state = r.Bytes.ToArray();
        _received = new ServerSnapshot(r.Index, r.Epoch, state);
        return state;
    }

    /// <summary>
    /// Installs the snapshot just received: it is stored with where its log resumes, and the log is replaced by an
    /// empty one continuing after <paramref name="afterIndex"/> (of <paramref name="epoch"/>), all durably at once, as
    /// <c>DurableLog.InstallSnapshot</c> orders it: writes still pending belong to the old log, which is gone.
    /// </summary>
    public void ResetTo(long afterIndex, long epoch)
    {
        if (_received is { } received)
        {
            StoreSnapshot(received with { LogResumesAfter = afterIndex, LogResumesAfterEpoch = epoch });
            _received = null;
        }

        _pending.Clear();
        _durable.Clear();
        _first = afterIndex + 1;
    }

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

        if (_receiving is { } receiving && receiving.Bytes.Count > 0)
        {
            // Chunks are written without fsync: a crash may keep only part of them.
            var keep = random.Next(receiving.Bytes.Count + 1);
            receiving.Bytes.RemoveRange(keep, receiving.Bytes.Count - keep);
        }

        return ops.Length - kept;
    }

    /// <summary>
    /// What a restart finds: the saved epoch, the newest snapshot, and the log entries after the point it resumes at
    /// (its index, or lower for one installed while the log it reads was still arriving: then the restart backfills).
    /// </summary>
    public (long Epoch, ServerSnapshot? Snapshot, List<LogEntry> Entries) Recover()
    {
        _received = null;
        if (Snapshot is { } stored && SnapshotOnRestart is { } reread)
        {
            Snapshot = reread(stored);
        }

        var after = Snapshot?.LogResumesAfter ?? 0;
        if (LastDurable < after)
        {
            // The snapshot reaches past the log's end (it covered entries applied before they were durable here):
            // the log continues after it, as DurableLog.ResetTo does.
            _durable.Clear();
            _first = after + 1;
        }

        return (SavedEpoch, Snapshot, [.. _durable.Where(e => e.Index > after)]);
    }

    /// <inheritdoc />
    /// <summary>
    /// The durable entries, encoded as the segment files hand them over: the primary's catch-up path, through the
    /// simulated wire. In one buffer the next read reuses, as a server's disk archive does, so a node that kept a run
    /// past its send would find it overwritten.
    /// </summary>
    public bool TryReadEncoded(long from, int maxCount, int maxBytes, out EncodedEntries run)
    {
        var read = EncodedEntries.Of(Read(from, maxCount, maxBytes));
        if (_encoded.Length < read.Bytes.Length)
        {
            _encoded = new byte[read.Bytes.Length];
        }

        read.Bytes.Span.CopyTo(_encoded);
        run = new EncodedEntries(read.Count, _encoded.AsMemory(0, read.Bytes.Length));
        return true;
    }

    public LogEntry[] Read(long from, int maxCount, int maxBytes)
    {
        if (from < _first || from > LastDurable)
        {
            return [];
        }

        var result = new List<LogEntry>();
        var bytes = 0;
        for (var i = from; i <= LastDurable && result.Count < maxCount; i++)
        {
            var e = _durable[(int)(i - _first)];
            result.Add(e);
            bytes += e.WireSize;
            if (bytes >= maxBytes)
            {
                break;
            }
        }

        return [.. result];
    }

    private void Apply(DiskOp op, int limit)
    {
        if (op.CompactBelow > 0)
        {
            var drop = (int)Math.Clamp(op.CompactBelow - _first, 0, _durable.Count);
            _durable.RemoveRange(0, drop);
            _first += drop;
            return;
        }

        if (op.Entries is null)
        {
            if (op.TruncateFrom <= LastDurable)
            {
                var from = (int)Math.Max(0, op.TruncateFrom - _first);
                _durable.RemoveRange(from, _durable.Count - from);
            }

            return;
        }

        var count = Math.Min(limit, op.Entries.Length);
        for (var i = 0; i < count; i++)
        {
            var e = op.Entries[i];
            if (e.Index != LastDurable + 1)
            {
                throw new InvalidOperationException($"simulated disk: entry {e.Index} written after {LastDurable}; writes must be contiguous");
            }

            _durable.Add(e);
        }
    }

    private sealed record DiskOp(long Seq, LogEntry[]? Entries, long TruncateFrom, long CompactBelow);
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

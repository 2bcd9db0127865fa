using System.Buffers;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>
/// The per-client deduplication table, part of the replicated state so that every server agrees on it.
/// A write is named by (client id, request seq); applying it twice returns the first result. A client's
/// <c>FirstIncomplete</c> says which results it can no longer ask for, so they are dropped.
/// </summary>
/// <remarks>
/// The table stays bounded two ways, both decided from the log alone so every replica drops the same sessions at the
/// same index (Raft dissertation §6.3): a session whose last write's log time is more than the idle timeout older than
/// the entry being applied expires, and over the session limit the least recently used session goes (by log order).
/// A client whose session is gone must not have a retry applied as new, so the table can tell "expired" from "new":
/// <list type="bullet">
/// <item>the ids of the most recently expired or evicted sessions are remembered (as many as the session limit);</item>
/// <item>beyond that, an unknown client whose request carries <c>FirstIncomplete</c> above 1 is expired: the client
/// library sends 1 until a write of its session may have been applied and finished, so a larger value proves an
/// earlier write of the session existed.</item>
/// </list>
/// Both refusals say the outcome is unknown; the client then starts a fresh session.
/// </remarks>
public sealed class ClientSessions
{
    private readonly Dictionary<ulong, Session> _sessions = [];
    private readonly LinkedList<ulong> _byLastUse = new();
    private readonly HashSet<ulong> _expired = [];
    private readonly Queue<ulong> _expiredOrder = new();
    private readonly int _maxSessions;
    private readonly long _idleTimeoutMs;

    /// <param name="maxSessions">Most sessions kept (and most expired ids remembered).</param>
    /// <param name="idleTimeout">A session idle this long in log time expires; <see cref="Timeout.InfiniteTimeSpan"/>: never.</param>
    public ClientSessions(int maxSessions, TimeSpan idleTimeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSessions, 1);
        if (idleTimeout != Timeout.InfiniteTimeSpan && idleTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(idleTimeout), idleTimeout, "the session idle timeout must be positive");
        }

        _maxSessions = maxSessions;
        _idleTimeoutMs = idleTimeout == Timeout.InfiniteTimeSpan ? long.MaxValue : (long)idleTimeout.TotalMilliseconds;
    }

    public ClientSessions(int maxSessions)
        : this(maxSessions, Timeout.InfiniteTimeSpan)
    {
    }

    /// <summary>Clients with a session.</summary>
    public int Count => _sessions.Count;

    /// <summary>Expired or evicted sessions whose ids are still remembered.</summary>
    public int ExpiredCount => _expired.Count;

    /// <summary>Sessions expired by idleness since this table was created or restored (not replicated; for metrics).</summary>
    public long ExpiredTotal { get; private set; }

    /// <summary>True when <paramref name="clientId"/> has a session.</summary>
    public bool Contains(ulong clientId) => _sessions.ContainsKey(clientId);

    /// <summary>
    /// What is known of (client, seq) before logging a write. An unknown client is <see cref="DedupLookup.Expired"/> here
    /// only when its id is remembered as expired; the <c>FirstIncomplete</c> rule waits for <see cref="Begin"/>, because a
    /// primary may look up before it has applied the entry that created the session (pipelined writes, or a new
    /// primary still committing its predecessor's entries), while applying in log order always sees it.
    /// </summary>
    public DedupLookup Lookup(ulong clientId, long seq, out ReadOnlyMemory<byte> result)
    {
        result = default;
        if (!_sessions.TryGetValue(clientId, out var session))
        {
            return _expired.Contains(clientId) ? DedupLookup.Expired : DedupLookup.New;
        }

        if (seq < session.LowWatermark)
        {
            return DedupLookup.Forgotten;
        }

        if (session.Results.TryGetValue(seq, out var stored))
        {
            result = stored;
            return DedupLookup.Applied;
        }

        return DedupLookup.New;
    }

    /// <summary>
    /// Expires every session whose last write is more than the idle timeout older than <paramref name="logTimeMs"/>
    /// (the time of the entry about to be applied). Sessions are kept in log order and log time never decreases
    /// along the log, so the expired ones are at the front.
    /// </summary>
    public void ExpireIdle(long logTimeMs)
    {
        if (_idleTimeoutMs == long.MaxValue)
        {
            return;
        }

        var horizon = logTimeMs - _idleTimeoutMs;
        while (_byLastUse.First is { } oldest && _sessions[oldest.Value].LastLogTimeMs < horizon)
        {
            _byLastUse.RemoveFirst();
            _sessions.Remove(oldest.Value);
            Remember(oldest.Value);
            ExpiredTotal++;
        }
    }

    /// <summary>
    /// Records the outcome of applying (client, seq) at <paramref name="index"/>: <see cref="SessionWrite.Apply"/>
    /// (apply it, then <see cref="Complete"/>), <see cref="SessionWrite.Duplicate"/> (applied before:
    /// <paramref name="previous"/> is the first result) or <see cref="SessionWrite.Expired"/> (the session is gone:
    /// do not apply, the outcome is unknown to the client).
    /// </summary>
    public SessionWrite Begin(ulong clientId, long seq, long firstIncomplete, long index, long logTimeMs, out ReadOnlyMemory<byte> previous)
    {
        previous = default;
        if (!_sessions.TryGetValue(clientId, out var session))
        {
            if (IsExpired(clientId, firstIncomplete))
            {
                return SessionWrite.Expired;
            }

            session = new Session(_byLastUse.AddLast(clientId));
            _sessions[clientId] = session;
            EvictIfFull();
        }
        else
        {
            _byLastUse.Remove(session.Node);
            _byLastUse.AddLast(session.Node);
        }

        session.LastUsedIndex = index;
        session.LastLogTimeMs = Math.Max(session.LastLogTimeMs, logTimeMs);
        var duplicate = false;
        if (seq < session.LowWatermark)
        {
            // A retry of a write the client has already seen answered: never apply it again.
            duplicate = true;
        }
        else if (session.Results.TryGetValue(seq, out var stored))
        {
            previous = stored;
            duplicate = true;
        }

        if (firstIncomplete > session.LowWatermark)
        {
            session.LowWatermark = firstIncomplete;
            if (session.Results.Count > 0 && session.LowestResultSeq < firstIncomplete)
            {
                // Every applied write moves the watermark, so this runs for most entries: no scan while no result is
                // below it, and removal during the walk (Dictionary allows it) rather than a list of keys per entry.
                var lowest = long.MaxValue;
                foreach (var key in session.Results.Keys)
                {
                    if (key < firstIncomplete)
                    {
                        session.Results.Remove(key);
                    }
                    else
                    {
                        lowest = Math.Min(lowest, key);
                    }
                }

                session.LowestResultSeq = lowest;
            }
        }

        return duplicate ? SessionWrite.Duplicate : SessionWrite.Apply;
    }

    /// <summary>As <see cref="Begin"/> without log time: false (and the first result) when the write must not be applied.</summary>
    public bool TryBegin(ulong clientId, long seq, long firstIncomplete, long index, out ReadOnlyMemory<byte> previous) =>
        Begin(clientId, seq, firstIncomplete, index, 0, out previous) == SessionWrite.Apply;

    /// <summary>Stores the result of a write just applied.</summary>
    public void Complete(ulong clientId, long seq, ReadOnlyMemory<byte> result)
    {
        var session = _sessions[clientId];
        if (seq >= session.LowWatermark)
        {
            session.Results[seq] = result;
            session.LowestResultSeq = Math.Min(session.LowestResultSeq, seq);
        }
    }

    private bool IsExpired(ulong clientId, long firstIncomplete) => firstIncomplete > 1 || _expired.Contains(clientId);

    private void Remember(ulong clientId)
    {
        if (_expired.Add(clientId))
        {
            _expiredOrder.Enqueue(clientId);
            while (_expiredOrder.Count > _maxSessions)
            {
                _expired.Remove(_expiredOrder.Dequeue());
            }
        }
    }

    private void EvictIfFull()
    {
        while (_sessions.Count > _maxSessions && _byLastUse.First is { } oldest)
        {
            _byLastUse.RemoveFirst();
            _sessions.Remove(oldest.Value);
            Remember(oldest.Value);
        }
    }

    internal void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var sizeOf = 4 + 4 + (8 * _expiredOrder.Count);
        foreach (var id in _byLastUse)
        {
            var s = _sessions[id];
            sizeOf += 8 + 8 + 8 + 8 + 4;
            foreach (var r in s.Results.Values)
            {
                sizeOf += 8 + 4 + r.Length;
            }
        }

        var span = writer.GetSpan(sizeOf);
        var w = new WireWriter(span);
        w.WriteInt32(_sessions.Count);
        foreach (var id in _byLastUse)
        {
            var s = _sessions[id];
            w.WriteUInt64(id);
            w.WriteInt64(s.LowWatermark);
            w.WriteInt64(s.LastUsedIndex);
            w.WriteInt64(s.LastLogTimeMs);
            w.WriteInt32(s.Results.Count);
            foreach (var (seq, result) in s.Results.OrderBy(kv => kv.Key))
            {
                w.WriteInt64(seq);
                w.WriteBytes(result.Span);
            }
        }

        // The remembered expired ids, oldest first, so a restored table forgets them in the same order.
        w.WriteInt32(_expiredOrder.Count);
        foreach (var id in _expiredOrder)
        {
            w.WriteUInt64(id);
        }

        writer.Advance(sizeOf);
    }

    internal int Restore(ReadOnlySpan<byte> snapshot)
    {
        _sessions.Clear();
        _byLastUse.Clear();
        _expired.Clear();
        _expiredOrder.Clear();
        var r = new WireReader(snapshot, "client-session snapshot");
        var count = r.ReadCount("sessions", 36);
        for (var i = 0; i < count; i++)
        {
            var id = r.ReadUInt64("clientId");
            var session = new Session(_byLastUse.AddLast(id))
            {
                LowWatermark = r.ReadInt64("lowWatermark"),
                LastUsedIndex = r.ReadInt64("lastUsedIndex"),
                LastLogTimeMs = r.ReadInt64("lastLogTimeMs"),
            };
            var results = r.ReadCount("results", 12);
            for (var j = 0; j < results; j++)
            {
                var seq = r.ReadInt64("seq");
                session.Results[seq] = r.ReadBytes("result");
                session.LowestResultSeq = Math.Min(session.LowestResultSeq, seq);
            }

            _sessions[id] = session;
        }

        var expired = r.ReadCount("expired", 8);
        for (var i = 0; i < expired; i++)
        {
            var id = r.ReadUInt64("expiredClientId");
            if (_expired.Add(id))
            {
                _expiredOrder.Enqueue(id);
            }
        }

        return snapshot.Length - r.Remaining;
    }

    private sealed class Session(LinkedListNode<ulong> node)
    {
        public LinkedListNode<ulong> Node { get; } = node;

        public long LowWatermark { get; set; }

        public long LastUsedIndex { get; set; }

        /// <summary>The log time of the session's last write: what its idleness is measured from.</summary>
        public long LastLogTimeMs { get; set; }

        public Dictionary<long, ReadOnlyMemory<byte>> Results { get; } = [];

        /// <summary>No key of <see cref="Results"/> is below it (it may be lower than the lowest key).</summary>
        public long LowestResultSeq { get; set; } = long.MaxValue;
    }
}

/// <summary>What the deduplication table knows of a write.</summary>
public enum DedupLookup
{
    /// <summary>Never applied: log it.</summary>
    New,

    /// <summary>Applied; here is its result.</summary>
    Applied,

    /// <summary>Below the client's watermark: answered long ago, result no longer held.</summary>
    Forgotten,

    /// <summary>The client's session expired (or was evicted): whether the write was applied is unknown.</summary>
    Expired,
}

/// <summary>What applying a logged write does, decided by the deduplication table.</summary>
public enum SessionWrite
{
    /// <summary>New: apply it.</summary>
    Apply,

    /// <summary>Applied before: return the first result, do not apply again.</summary>
    Duplicate,

    /// <summary>The session is gone: do not apply; the client is told the outcome is unknown.</summary>
    Expired,
}

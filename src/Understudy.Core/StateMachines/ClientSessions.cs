using System.Buffers;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>
/// The per-client deduplication table, part of the replicated state so that every server agrees on it.
/// A write is named by (client id, request seq); applying it twice returns the first result. A client's
/// <c>FirstIncomplete</c> says which results it can no longer ask for, so they are dropped. Sessions
/// idle the longest (by log position, so every server evicts the same ones) go when over the limit.
/// </summary>
public sealed class ClientSessions
{
    private readonly Dictionary<ulong, Session> _sessions = [];
    private readonly LinkedList<ulong> _byLastUse = new();
    private readonly int _maxSessions;

    public ClientSessions(int maxSessions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSessions, 1);
        _maxSessions = maxSessions;
    }

    /// <summary>Clients with a session.</summary>
    public int Count => _sessions.Count;

    /// <summary>What is known of (client, seq) before logging a write.</summary>
    public DedupLookup Lookup(ulong clientId, long seq, out ReadOnlyMemory<byte> result)
    {
        result = default;
        if (!_sessions.TryGetValue(clientId, out var session))
        {
            return DedupLookup.New;
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
    /// Records the outcome of applying (client, seq) at <paramref name="index"/>. Returns false (and the
    /// first result) when the write was applied before: the caller must not apply it again.
    /// </summary>
    public bool TryBegin(ulong clientId, long seq, long firstIncomplete, long index, out ReadOnlyMemory<byte> previous)
    {
        previous = default;
        if (!_sessions.TryGetValue(clientId, out var session))
        {
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
            if (session.Results.Count > 0)
            {
                List<long>? drop = null;
                foreach (var key in session.Results.Keys)
                {
                    if (key < firstIncomplete)
                    {
                        (drop ??= []).Add(key);
                    }
                }

                if (drop is not null)
                {
                    foreach (var key in drop)
                    {
                        session.Results.Remove(key);
                    }
                }
            }
        }

        return !duplicate;
    }

    /// <summary>Stores the result of a write just applied.</summary>
    public void Complete(ulong clientId, long seq, ReadOnlyMemory<byte> result)
    {
        var session = _sessions[clientId];
        if (seq >= session.LowWatermark)
        {
            session.Results[seq] = result;
        }
    }

    private void EvictIfFull()
    {
        while (_sessions.Count > _maxSessions && _byLastUse.First is { } oldest)
        {
            _byLastUse.RemoveFirst();
            _sessions.Remove(oldest.Value);
        }
    }

    internal void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var sizeOf = 4;
        foreach (var id in _byLastUse)
        {
            var s = _sessions[id];
            sizeOf += 8 + 8 + 8 + 4;
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
            w.WriteInt32(s.Results.Count);
            foreach (var (seq, result) in s.Results.OrderBy(kv => kv.Key))
            {
                w.WriteInt64(seq);
                w.WriteBytes(result.Span);
            }
        }

        writer.Advance(sizeOf);
    }

    internal int Restore(ReadOnlySpan<byte> snapshot)
    {
        _sessions.Clear();
        _byLastUse.Clear();
        var r = new WireReader(snapshot, "client-session snapshot");
        var count = r.ReadCount("sessions", 28);
        for (var i = 0; i < count; i++)
        {
            var id = r.ReadUInt64("clientId");
            var session = new Session(_byLastUse.AddLast(id))
            {
                LowWatermark = r.ReadInt64("lowWatermark"),
                LastUsedIndex = r.ReadInt64("lastUsedIndex"),
            };
            var results = r.ReadCount("results", 12);
            for (var j = 0; j < results; j++)
            {
                session.Results[r.ReadInt64("seq")] = r.ReadBytes("result");
            }

            _sessions[id] = session;
        }

        return snapshot.Length - r.Remaining;
    }

    private sealed class Session(LinkedListNode<ulong> node)
    {
        public LinkedListNode<ulong> Node { get; } = node;

        public long LowWatermark { get; set; }

        public long LastUsedIndex { get; set; }

        public Dictionary<long, ReadOnlyMemory<byte>> Results { get; } = [];
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
}

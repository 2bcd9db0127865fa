using System.Diagnostics;

namespace Understudy.Checking.Linearizability;

/// <summary>How the search of one key's history ended.</summary>
internal enum SearchStatus
{
    Linearizable,
    NotLinearizable,
    OutOfBudget,
}

/// <summary>What the search of one sub-history found; the deepest partial linearization only when it failed.</summary>
internal sealed record SearchResult(SearchStatus Status, IReadOnlyList<int> Deepest, int Unplaced, string? DeepestState);

/// <summary>
/// Wing &amp; Gong's search with Lowe's memoization over one key's operations (Lowe, "Testing for
/// linearizability", 2017; the same scheme as Porcupine's checker). The history is a doubly linked list of
/// call and return entries in time order. The search walks it: at a call entry it tries to linearize that
/// operation next (the model must accept it, and the pair (set of linearized operations, resulting state) must
/// be new, else an equivalent configuration was already explored); it then lifts the call and its return out of
/// the list and starts again from the head. Reaching a return entry means that operation had to be linearized
/// already and was not: the search backtracks, unlifting the last linearized operation and trying the entry
/// after it. Operations of unknown outcome return at +∞, after every other entry, so they may be linearized
/// anywhere after their invoke; once every acknowledged operation is linearized the rest may be left out
/// ("never applied"), so the search succeeds then.
/// </summary>
internal static class KeySearch
{
    private const int BudgetCheckInterval = 1024;

    public static SearchResult Run(IReadOnlyList<KvOperation> operations, long deadlineTimestamp, CancellationToken cancellationToken)
    {
        var n = operations.Count;
        if (n == 0)
        {
            return new SearchResult(SearchStatus.Linearizable, [], -1, null);
        }

        var head = Build(operations);
        var words = (n + 63) / 64;
        var linearized = new ulong[words];
        var zobrist = Zobrist(n);
        var bitsHash = 0UL;
        var cache = new HashSet<CacheKey>(CacheKeyComparer.Instance);
        var stack = new Stack<(Entry Call, string? State)>();
        var remaining = 0;
        foreach (var op in operations)
        {
            if (op.Outcome == KvOutcome.Ok)
            {
                remaining++;
            }
        }

        string? state = null;
        var entry = head.Next;
        var steps = 0;
        var deepest = new List<int>();
        var unplaced = -1;
        string? deepestState = null;
        while (remaining > 0 && head.Next is not null)
        {
            if (++steps % BudgetCheckInterval == 0 && (cancellationToken.IsCancellationRequested || Stopwatch.GetTimestamp() > deadlineTimestamp))
            {
                return new SearchResult(SearchStatus.OutOfBudget, [], -1, null);
            }

            if (entry!.IsCall)
            {
                var op = operations[entry.Op];

                // An unknown-outcome call that would change nothing here is never worth placing here: leaving it
                // out ("never applied") reaches the same state, and it can still be placed later.
                if (KvModel.Step(state, op, out var next)
                    && !(op.Outcome == KvOutcome.Unknown && string.Equals(next, state, StringComparison.Ordinal)))
                {
                    Set(linearized, entry.Op);
                    var hash = bitsHash ^ zobrist[entry.Op];
                    var probe = new CacheKey(linearized, next, hash);
                    if (!cache.Contains(probe))
                    {
                        cache.Add(probe with { Bits = (ulong[])linearized.Clone() });
                        bitsHash = hash;
                        stack.Push((entry, state));
                        state = next;
                        if (op.Outcome == KvOutcome.Ok)
                        {
                            remaining--;
                        }

                        Lift(entry);
                        entry = head.Next;
                        continue;
                    }

                    Clear(linearized, entry.Op);
                }

                entry = entry.Next;
                continue;
            }

            // A return entry: its operation should already be linearized. Backtrack.
            if (stack.Count > deepest.Count || unplaced < 0)
            {
                deepest.Clear();
                foreach (var (call, _) in stack)
                {
                    deepest.Add(call.Op);
                }

                deepest.Reverse();
                unplaced = entry.Op;
                deepestState = state;
            }

            if (stack.Count == 0)
            {
                return new SearchResult(SearchStatus.NotLinearizable, deepest, unplaced, deepestState);
            }

            var (top, previous) = stack.Pop();
            state = previous;
            Clear(linearized, top.Op);
            bitsHash ^= zobrist[top.Op];
            if (operations[top.Op].Outcome == KvOutcome.Ok)
            {
                remaining++;
            }

            Unlift(top);
            entry = top.Next;
        }

        return new SearchResult(SearchStatus.Linearizable, [], -1, null);
    }

    /// <summary>Call and return entries by time; at equal times calls first, so touching operations count as concurrent.</summary>
    private static Entry Build(IReadOnlyList<KvOperation> operations)
    {
        var entries = new List<Entry>(operations.Count * 2);
        for (var i = 0; i < operations.Count; i++)
        {
            var op = operations[i];
            var returnsAt = op.Outcome == KvOutcome.Unknown || op.CompletedAt is null ? long.MaxValue : op.CompletedAt.Value;
            var call = new Entry(i, true, op.InvokedAt);
            var ret = new Entry(i, false, returnsAt);
            call.Match = ret;
            ret.Match = call;
            entries.Add(call);
            entries.Add(ret);
        }

        entries.Sort(static (a, b) =>
        {
            var byTime = a.Time.CompareTo(b.Time);
            if (byTime != 0)
            {
                return byTime;
            }

            if (a.IsCall != b.IsCall)
            {
                return a.IsCall ? -1 : 1;
            }

            return a.Op.CompareTo(b.Op);
        });
        var head = new Entry(-1, false, long.MinValue);
        var last = head;
        foreach (var e in entries)
        {
            last.Next = e;
            e.Prev = last;
            last = e;
        }

        return head;
    }

    /// <summary>Takes a call entry and its return out of the list (Lowe's lift).</summary>
    private static void Lift(Entry call)
    {
        call.Prev!.Next = call.Next;
        call.Next!.Prev = call.Prev;
        var ret = call.Match!;
        ret.Prev!.Next = ret.Next;
        if (ret.Next is not null)
        {
            ret.Next.Prev = ret.Prev;
        }
    }

    /// <summary>Puts them back where they were, in the reverse order of <see cref="Lift"/>.</summary>
    private static void Unlift(Entry call)
    {
        var ret = call.Match!;
        ret.Prev!.Next = ret;
        if (ret.Next is not null)
        {
            ret.Next.Prev = ret;
        }

        call.Prev!.Next = call;
        call.Next!.Prev = call;
    }

    private static void Set(ulong[] bits, int i) => bits[i >> 6] |= 1UL << (i & 63);

    private static void Clear(ulong[] bits, int i) => bits[i >> 6] &= ~(1UL << (i & 63));

    /// <summary>A fixed random word per operation; the set's hash is the XOR of its members' words, kept as bits change.</summary>
    private static ulong[] Zobrist(int n)
    {
        var words = new ulong[n];
        var x = 0x9E3779B97F4A7C15UL;
        for (var i = 0; i < n; i++)
        {
            // SplitMix64.
            x += 0x9E3779B97F4A7C15UL;
            var z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            words[i] = z ^ (z >> 31);
        }

        return words;
    }

    private sealed class Entry(int op, bool isCall, long time)
    {
        public int Op { get; } = op;

        public bool IsCall { get; } = isCall;

        public long Time { get; } = time;

        public Entry? Match { get; set; }

        public Entry? Prev { get; set; }

        public Entry? Next { get; set; }
    }

    /// <summary>Lowe's memo key: which operations are linearized, and the state they left.</summary>
    private readonly record struct CacheKey(ulong[] Bits, string? State, ulong BitsHash);

    private sealed class CacheKeyComparer : IEqualityComparer<CacheKey>
    {
        public static readonly CacheKeyComparer Instance = new();

        public bool Equals(CacheKey x, CacheKey y) =>
            x.BitsHash == y.BitsHash
            && string.Equals(x.State, y.State, StringComparison.Ordinal)
            && x.Bits.AsSpan().SequenceEqual(y.Bits);

        public int GetHashCode(CacheKey obj)
        {
            var h = obj.BitsHash ^ ((ulong)(uint)(obj.State is null ? 0 : StringComparer.Ordinal.GetHashCode(obj.State)) * 0x9E3779B97F4A7C15UL);
            return (int)(h ^ (h >> 32));
        }
    }
}

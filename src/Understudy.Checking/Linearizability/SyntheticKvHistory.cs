using System.Globalization;

namespace Understudy.Checking.Linearizability;

/// <summary>
/// Random key-value histories that are linearizable by construction: each call gets an interval on one clock
/// (clients call one at a time), a linearization point inside it, and its result from a plain dictionary
/// updated in the order of those points. Some calls end unknown (applied or not, at the generator's whim) and
/// some fail (never applied). The checker's tests and <c>understudy bench checker</c> judge them: a history of a
/// given shape (operations, clients, keys, share of unknown outcomes) is the same for the same seed.
/// </summary>
public static class SyntheticKvHistory
{
    private static readonly string[] Values = ["0", "1", "2", "3", "7", "x", "y"];

    /// <summary>
    /// <paramref name="operations"/> calls from <paramref name="clients"/> clients over <paramref name="keys"/> keys
    /// (k0, k1, ...), a fraction <paramref name="unknownFraction"/> of them of unknown outcome, in invoke order.
    /// </summary>
    public static KvOperation[] Linearizable(int operations, int clients, int keys, double unknownFraction, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(operations);
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(keys, 1);
        var random = new Random(seed);
        var cursors = new long[clients];
        var planned = new List<(int Process, string Key, int Kind, long Invoked, long Point, long Completed, bool Unknown, bool Applies, string? Expected, string Value, long Delta)>(operations);
        for (var i = 0; i < operations; i++)
        {
            var process = random.Next(clients);
            var invoked = cursors[process] + random.Next(0, 500);
            var duration = random.Next(50, 2_000);
            var completed = invoked + duration;
            cursors[process] = completed;
            var unknown = random.NextDouble() < unknownFraction;
            var key = "k" + random.Next(keys).ToString(CultureInfo.InvariantCulture);
            var roll = random.Next(100);
            var kind = roll < 40 ? 0 : roll < 65 ? 1 : roll < 80 ? 2 : roll < 95 ? 3 : 4; // get, put, cas, incr, delete
            var expected = random.Next(4) == 0 ? null : Values[random.Next(Values.Length)];
            planned.Add((process, key, kind, invoked, invoked + random.Next(0, duration + 1), completed, unknown, !unknown || random.Next(2) == 0,
                expected, Values[random.Next(Values.Length)], random.Next(1, 4)));
        }

        var state = new Dictionary<string, string?>(StringComparer.Ordinal);
        var history = new List<(long Invoked, KvOperation Op)>(operations);
        foreach (var p in planned.OrderBy(p => p.Point))
        {
            var current = state.GetValueOrDefault(p.Key);
            long? end = p.Unknown ? null : p.Completed;
            var outcome = p.Unknown ? KvOutcome.Unknown : KvOutcome.Ok;
            KvOperation op;
            switch (p.Kind)
            {
                case 0:
                    op = KvOperation.Get(p.Process, p.Key, p.Invoked, end, current, outcome);
                    break;
                case 1:
                    op = KvOperation.Put(p.Process, p.Key, p.Value, p.Invoked, end, outcome);
                    if (p.Applies)
                    {
                        state[p.Key] = p.Value;
                    }

                    break;
                case 2:
                    // Half the time the client expects what is there, as a read-modify-write loop would.
                    var expected = random.Next(2) == 0 ? current : p.Expected;
                    var swapped = string.Equals(current, expected, StringComparison.Ordinal);
                    op = KvOperation.CompareAndSet(p.Process, p.Key, expected, p.Value, p.Invoked, end, swapped, outcome);
                    if (swapped && p.Applies)
                    {
                        state[p.Key] = p.Value;
                    }

                    break;
                case 3:
                    long number = 0;
                    if (current is not null && !long.TryParse(current, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out number))
                    {
                        // The store refuses to increment a non-integer: the call fails, nothing applied.
                        op = KvOperation.Increment(p.Process, p.Key, p.Delta, p.Invoked, p.Completed, null, KvOutcome.Failed);
                        break;
                    }

                    op = KvOperation.Increment(p.Process, p.Key, p.Delta, p.Invoked, end, number + p.Delta, outcome);
                    if (p.Applies)
                    {
                        state[p.Key] = (number + p.Delta).ToString(CultureInfo.InvariantCulture);
                    }

                    break;
                default:
                    op = KvOperation.Delete(p.Process, p.Key, p.Invoked, end, outcome);
                    if (p.Applies)
                    {
                        state[p.Key] = null;
                    }

                    break;
            }

            history.Add((p.Invoked, op));
        }

        return [.. history.OrderBy(h => h.Invoked).Select(h => h.Op)];
    }
}

using System.Globalization;

namespace Understudy.Checking.Linearizability;

/// <summary>
/// The sequential specification of one key of the key-value store: the state is the key's value, null when
/// the key is missing. Every operation reads or writes one key only, so a history can be checked key by key.
/// <list type="bullet">
/// <item><c>get</c> returns the value (null when missing) and changes nothing.</item>
/// <item><c>put</c> sets the value; <c>delete</c> makes the key missing (deleting a missing key is allowed).</item>
/// <item><c>compare-and-set(expected, new)</c> swaps when the value equals <c>expected</c> (null expects the key
/// missing) and answers true; otherwise changes nothing and answers false.</item>
/// <item><c>increment(delta)</c> treats a missing key as 0 and a value as a decimal 64-bit integer
/// (invariant culture, optional leading sign); it stores and answers the sum written in canonical decimal.
/// A value that is not such an integer, or a sum that overflows, is an error the store refuses: such a call
/// must be recorded as <see cref="KvOutcome.Failed"/>, so an acknowledged one over such a value is impossible.</item>
/// </list>
/// Expiry by log time is not modelled: a history with expiring keys needs the expiry entries as operations
/// (a delete at the log time it fired) before this model can judge it.
/// </summary>
public static class KvModel
{
    /// <summary>
    /// Applies <paramref name="operation"/> to <paramref name="state"/>. For an acknowledged call, false means
    /// its recorded result cannot come from this state. A call of unknown outcome always applies (it has no
    /// result to contradict): a compare-and-set that does not match, or an increment that would fail, leaves
    /// the state as it was.
    /// </summary>
    public static bool Step(string? state, KvOperation operation, out string? next)
    {
        var ok = operation.Outcome == KvOutcome.Ok;
        next = state;
        switch (operation.Function)
        {
            case KvFunction.Get:
                return !ok || string.Equals(state, operation.Result, StringComparison.Ordinal);
            case KvFunction.Put:
                next = operation.Value;
                return true;
            case KvFunction.Delete:
                next = null;
                return true;
            case KvFunction.CompareAndSet:
                var matches = string.Equals(state, operation.Expected, StringComparison.Ordinal);
                if (matches)
                {
                    next = operation.Value;
                }

                return !ok || operation.Swapped == matches;
            case KvFunction.Increment:
                if (!TryIncrement(state, operation.Delta, out var sum))
                {
                    return !ok;
                }

                if (ok && operation.Counter != sum)
                {
                    return false;
                }

                next = sum.ToString(CultureInfo.InvariantCulture);
                return true;
            default:
                return false;
        }
    }

    /// <summary>The increment rule alone: missing is 0; a non-integer value or an overflow is refused.</summary>
    public static bool TryIncrement(string? state, long delta, out long sum)
    {
        sum = 0;
        long current = 0;
        if (state is not null && !long.TryParse(state, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out current))
        {
            return false;
        }

        try
        {
            sum = checked(current + delta);
            return true;
        }
        catch (OverflowException)
        {
            return false;
        }
    }
}

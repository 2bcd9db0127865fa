using System.Globalization;
using Understudy.Checking.Linearizability;
using Understudy.Core.Client;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// The key-value workload of one simulated client: random gets, puts, deletes, compare-and-sets and increments over a
/// few keys shared by every client, so that calls conflict. Each call is recorded as one <see cref="KvOperation"/> with
/// its invoke and completion on the simulated clock (microseconds), its outcome unknown when the client gave up on it.
/// </summary>
/// <remarks>
/// Registers (k0, k1, ...) take puts, deletes and compare-and-sets of values unique to the call (<c>c2-17</c>), so a
/// value read names the one write that made it; counters (n0, n1, ...) take increments. A compare-and-set expects what
/// the client last saw of the key, so many of them swap. Gets read both kinds.
/// </remarks>
internal sealed class KeyValueCalls(SimWorld world, int process, string name)
{
    private readonly Dictionary<string, string?> _lastSeen = new(StringComparer.Ordinal);
    private int _written;
    private KvOperation? _open;

    /// <summary>True while a call is waiting for its result.</summary>
    public bool IsOpen => _open is not null;

    /// <summary>Picks the next call, remembers it as open, and gives what to send.</summary>
    public (RequestKind Kind, byte[] Payload) Next()
    {
        var random = world.Random;
        var keys = world.Options.Keys;
        var now = world.Now;
        var roll = random.Next(100);
        if (roll < 40)
        {
            var key = random.Next(3) == 0 ? Counter(random.Next(keys)) : Register(random.Next(keys));
            _open = new KvOperation { Process = process, Function = KvFunction.Get, Key = key, InvokedAt = now, Outcome = KvOutcome.Unknown };
            return (RequestKind.Read, KeyValueCommands.Get(key));
        }

        if (roll < 55)
        {
            var key = Register(random.Next(keys));
            var value = NextValue();
            _open = new KvOperation { Process = process, Function = KvFunction.Put, Key = key, Value = value, InvokedAt = now, Outcome = KvOutcome.Unknown };
            return (RequestKind.Write, KeyValueCommands.Put(key, value));
        }

        if (roll < 75)
        {
            var key = Register(random.Next(keys));
            var expected = _lastSeen.GetValueOrDefault(key);
            var value = NextValue();
            _open = new KvOperation { Process = process, Function = KvFunction.CompareAndSet, Key = key, Expected = expected, Value = value, InvokedAt = now, Outcome = KvOutcome.Unknown };
            return (RequestKind.Write, KeyValueCommands.CompareAndSet(key, expected, value));
        }

        if (roll < 93)
        {
            var key = Counter(random.Next(keys));
            var delta = 1 + random.Next(5);
            _open = new KvOperation { Process = process, Function = KvFunction.Increment, Key = key, Delta = delta, InvokedAt = now, Outcome = KvOutcome.Unknown };
            return (RequestKind.Write, KeyValueCommands.Increment(key, delta));
        }

        var deleted = random.Next(4) == 0 ? Counter(random.Next(keys)) : Register(random.Next(keys));
        _open = new KvOperation { Process = process, Function = KvFunction.Delete, Key = deleted, InvokedAt = now, Outcome = KvOutcome.Unknown };
        return (RequestKind.Write, KeyValueCommands.Delete(deleted));
    }

    /// <summary>The open call ended: its record, or null when none was open.</summary>
    public KvOperation? Complete(in ClientResult result)
    {
        if (_open is not { } open)
        {
            return null;
        }

        _open = null;
        var completed = Record(open, result, world.Now);
        if (completed is { Outcome: KvOutcome.Ok })
        {
            switch (completed.Function)
            {
                case KvFunction.Get:
                    _lastSeen[completed.Key] = completed.Result;
                    break;
                case KvFunction.Put:
                case KvFunction.CompareAndSet when completed.Swapped == true:
                    _lastSeen[completed.Key] = completed.Value;
                    break;
                case KvFunction.Delete:
                    _lastSeen[completed.Key] = null;
                    break;
            }
        }

        return completed;
    }

    /// <summary>A call's record once the client has its result (also used for the final reads of a run).</summary>
    public static KvOperation Record(KvOperation open, in ClientResult result, long now)
    {
        switch (result.Outcome)
        {
            case OutcomeKind.Failed:
                return open with { Outcome = KvOutcome.Failed, CompletedAt = now };
            case not OutcomeKind.Ok:
                return open with { Outcome = KvOutcome.Unknown, CompletedAt = null };
        }

        var answer = KeyValueCommands.DecodeResult(result.Payload.Span);
        var ok = open with { Outcome = KvOutcome.Ok, CompletedAt = now };
        return open.Function switch
        {
            KvFunction.Get => ok with { Result = answer.Status == KeyValueStatus.Ok ? answer.ValueText : null },
            KvFunction.CompareAndSet => ok with { Swapped = answer.Status == KeyValueStatus.Ok },

            // The store refuses an increment of a value that is not an integer, or that overflows: nothing applied.
            KvFunction.Increment => answer.Status == KeyValueStatus.Ok ? ok with { Counter = answer.Number } : open with { Outcome = KvOutcome.Failed, CompletedAt = now },
            _ => ok,
        };
    }

    /// <summary>For traces: the call and its result.</summary>
    public static string Describe(KvOperation op) => op.Outcome switch
    {
        KvOutcome.Ok => $"OK {op.Describe()}",
        KvOutcome.Failed => $"FAIL {op.Describe()}",
        _ => $"INFO {op.Describe()}",
    };

    public static string Register(int i) => "k" + i.ToString(CultureInfo.InvariantCulture);

    public static string Counter(int i) => "n" + i.ToString(CultureInfo.InvariantCulture);

    private string NextValue() => name + "-" + (++_written).ToString(CultureInfo.InvariantCulture);
}

using System.Globalization;
using Understudy.Checking.Linearizability;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Orchestration.Workloads;

/// <summary>
/// The key-value calls a chaos worker makes, and how each maps to bytes and back to a <see cref="KvOperation"/> for the
/// linearizability checker. Registers (k0, k1, ...) take puts, deletes and compare-and-sets of values unique to the call,
/// so a value read names the one write that made it; counters (n0, n1, ...) take increments; gets read both.
/// </summary>
public static class KeyValueCalls
{
    public static string Register(int i) => "k" + i.ToString(CultureInfo.InvariantCulture);

    public static string Counter(int i) => "n" + i.ToString(CultureInfo.InvariantCulture);

    /// <summary>Every key a workload of <paramref name="keys"/> registers and counters touches.</summary>
    public static IEnumerable<string> AllKeys(int keys) => Enumerable.Range(0, keys).SelectMany(i => new[] { Register(i), Counter(i) });

    /// <summary>
    /// The next call of <paramref name="process"/> (its <paramref name="n"/>th), not yet invoked: a compare-and-set expects
    /// what the process last saw of the key (<paramref name="lastSeen"/>), so many of them swap.
    /// </summary>
    public static KvOperation Next(Random random, int process, int n, int keys, IReadOnlyDictionary<string, string?> lastSeen)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(lastSeen);
        var value = $"w{process.ToString(CultureInfo.InvariantCulture)}-{n.ToString(CultureInfo.InvariantCulture)}";
        var register = Register(random.Next(keys));
        var roll = random.Next(100);
        return roll switch
        {
            < 40 => Open(process, KvFunction.Get, random.Next(3) == 0 ? Counter(random.Next(keys)) : register),
            < 55 => Open(process, KvFunction.Put, register) with { Value = value },
            < 75 => Open(process, KvFunction.CompareAndSet, register) with { Expected = lastSeen.GetValueOrDefault(register), Value = value },
            < 93 => Open(process, KvFunction.Increment, Counter(random.Next(keys))) with { Delta = 1 + random.Next(5) },
            _ => Open(process, KvFunction.Delete, random.Next(4) == 0 ? Counter(random.Next(keys)) : register),
        };
    }

    /// <summary>A get of <paramref name="key"/>, not yet invoked.</summary>
    public static KvOperation Get(int process, string key) => Open(process, KvFunction.Get, key);

    /// <summary>What to send for <paramref name="call"/>: a query (get) or a command.</summary>
    public static (RequestKind Kind, byte[] Payload) Encode(KvOperation call)
    {
        ArgumentNullException.ThrowIfNull(call);
        return call.Function switch
        {
            KvFunction.Get => (RequestKind.Read, KeyValueCommands.Get(call.Key)),
            KvFunction.Put => (RequestKind.Write, KeyValueCommands.Put(call.Key, call.Value!)),
            KvFunction.CompareAndSet => (RequestKind.Write, KeyValueCommands.CompareAndSet(call.Key, call.Expected, call.Value!)),
            KvFunction.Increment => (RequestKind.Write, KeyValueCommands.Increment(call.Key, call.Delta)),
            _ => (RequestKind.Write, KeyValueCommands.Delete(call.Key)),
        };
    }

    /// <summary>The record of an acknowledged call, from the store's answer.</summary>
    public static KvOperation Acknowledged(KvOperation call, in KeyValueResult answer, long completedAt)
    {
        ArgumentNullException.ThrowIfNull(call);
        var ok = call with { Outcome = KvOutcome.Ok, CompletedAt = completedAt };
        return call.Function switch
        {
            KvFunction.Get => ok with { Result = answer.Status == KeyValueStatus.Ok ? answer.ValueText : null },
            KvFunction.CompareAndSet => ok with { Swapped = answer.Status == KeyValueStatus.Ok },

            // The store refuses an increment of a value that is not an integer, or that overflows: nothing applied.
            KvFunction.Increment => answer.Status == KeyValueStatus.Ok ? ok with { Counter = answer.Number } : call with { Outcome = KvOutcome.Failed, CompletedAt = completedAt },
            _ => ok,
        };
    }

    private static KvOperation Open(int process, KvFunction function, string key) =>
        new() { Process = process, Function = function, Key = key, InvokedAt = 0, Outcome = KvOutcome.Unknown };
}

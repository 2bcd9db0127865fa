using System.Globalization;
using System.Text.Json.Serialization;

namespace Understudy.Checking.Linearizability;

/// <summary>What a key-value call does. Every one of them touches exactly one key.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<KvFunction>))]
public enum KvFunction
{
    Get,
    Put,
    Delete,
    CompareAndSet,
    Increment,
}

/// <summary>How a call ended, as the client saw it.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<KvOutcome>))]
public enum KvOutcome
{
    /// <summary>Acknowledged, with its result: it took effect once, between its invoke and its completion.</summary>
    Ok,

    /// <summary>Surely not applied (refused, or known not to have been sent): the checker drops it.</summary>
    Failed,

    /// <summary>
    /// Maybe applied, maybe not (a timeout, a lost connection; Jepsen's "info"): it may take effect at any time
    /// after its invoke, or never. Its completion is taken as +∞ whatever the record says.
    /// </summary>
    Unknown,
}

/// <summary>
/// One key-value call from invoke to completion. Times are microseconds on one monotonic clock shared by every
/// client of the history. Build one with the factory methods (<see cref="Get"/>, <see cref="Put"/>, ...).
/// </summary>
public sealed record KvOperation
{
    /// <summary>The client (process) that made the call; used in reports only.</summary>
    public required int Process { get; init; }

    public required KvFunction Function { get; init; }

    public required string Key { get; init; }

    /// <summary>The value written by <see cref="KvFunction.Put"/>, or the new value of <see cref="KvFunction.CompareAndSet"/>.</summary>
    public string? Value { get; init; }

    /// <summary>For <see cref="KvFunction.CompareAndSet"/>: the value expected; null expects the key to be missing.</summary>
    public string? Expected { get; init; }

    /// <summary>For <see cref="KvFunction.Increment"/>: what is added.</summary>
    public long Delta { get; init; }

    public required long InvokedAt { get; init; }

    /// <summary>When the answer arrived; null (or anything) for an <see cref="KvOutcome.Unknown"/> outcome, which never completes.</summary>
    public long? CompletedAt { get; init; }

    public required KvOutcome Outcome { get; init; }

    /// <summary>For an acknowledged get: the value read, null when the key was missing.</summary>
    public string? Result { get; init; }

    /// <summary>For an acknowledged compare-and-set: whether it swapped.</summary>
    public bool? Swapped { get; init; }

    /// <summary>For an acknowledged increment: the value after it.</summary>
    public long? Counter { get; init; }

    public static KvOperation Get(int process, string key, long invokedAt, long? completedAt, string? result, KvOutcome outcome = KvOutcome.Ok) =>
        new() { Process = process, Function = KvFunction.Get, Key = key, InvokedAt = invokedAt, CompletedAt = completedAt, Outcome = outcome, Result = outcome == KvOutcome.Ok ? result : null };

    public static KvOperation Put(int process, string key, string value, long invokedAt, long? completedAt, KvOutcome outcome = KvOutcome.Ok) =>
        new() { Process = process, Function = KvFunction.Put, Key = key, Value = value, InvokedAt = invokedAt, CompletedAt = completedAt, Outcome = outcome };

    public static KvOperation Delete(int process, string key, long invokedAt, long? completedAt, KvOutcome outcome = KvOutcome.Ok) =>
        new() { Process = process, Function = KvFunction.Delete, Key = key, InvokedAt = invokedAt, CompletedAt = completedAt, Outcome = outcome };

    public static KvOperation CompareAndSet(int process, string key, string? expected, string value, long invokedAt, long? completedAt, bool? swapped, KvOutcome outcome = KvOutcome.Ok) =>
        new() { Process = process, Function = KvFunction.CompareAndSet, Key = key, Expected = expected, Value = value, InvokedAt = invokedAt, CompletedAt = completedAt, Outcome = outcome, Swapped = outcome == KvOutcome.Ok ? swapped : null };

    public static KvOperation Increment(int process, string key, long delta, long invokedAt, long? completedAt, long? counter, KvOutcome outcome = KvOutcome.Ok) =>
        new() { Process = process, Function = KvFunction.Increment, Key = key, Delta = delta, InvokedAt = invokedAt, CompletedAt = completedAt, Outcome = outcome, Counter = outcome == KvOutcome.Ok ? counter : null };

    /// <summary>The call and its result, e.g. <c>put(k1, "a")</c> or <c>get(k1) -> "a"</c>.</summary>
    public string Describe()
    {
        var ok = Outcome == KvOutcome.Ok;
        return Function switch
        {
            KvFunction.Get => $"get({Key})" + (ok ? $" -> {Quote(Result)}" : ""),
            KvFunction.Put => $"put({Key}, {Quote(Value)})",
            KvFunction.Delete => $"del({Key})",
            KvFunction.CompareAndSet => $"cas({Key}, {Quote(Expected)}, {Quote(Value)})" + (ok ? $" -> {(Swapped == true ? "true" : "false")}" : ""),
            KvFunction.Increment => $"incr({Key}, {Delta.ToString(CultureInfo.InvariantCulture)})" + (ok ? $" -> {Counter?.ToString(CultureInfo.InvariantCulture) ?? "?"}" : ""),
            _ => Function.ToString(),
        };
    }

    /// <summary>One report line: <c>p3  put(k1, "a")  [12.000 ms .. 13.500 ms]  ok</c>.</summary>
    public string ToReportLine()
    {
        var end = Outcome == KvOutcome.Unknown || CompletedAt is null ? "?" : Milliseconds(CompletedAt.Value);
        var outcome = Outcome switch
        {
            KvOutcome.Ok => "ok",
            KvOutcome.Failed => "failed",
            _ => "unknown",
        };
        return $"p{Process.ToString(CultureInfo.InvariantCulture)}  {Describe()}  [{Milliseconds(InvokedAt)} .. {end}]  {outcome}";
    }

    internal static string Quote(string? value) => value is null ? "nil" : "\"" + value + "\"";

    internal static string Milliseconds(long microseconds) =>
        (microseconds / 1000.0).ToString("0.000", CultureInfo.InvariantCulture) + " ms";
}

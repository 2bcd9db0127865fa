using System.Text.Json.Serialization;

namespace Understudy.Checking;

/// <summary>What an operation did to the message store.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OpFunction>))]
public enum OpFunction
{
    Append,
    Read,
    Count,
}

/// <summary>Jepsen's event types: a call begins (invoke) and ends ok, failed (surely not applied) or info (unknown).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OpType>))]
public enum OpType
{
    Invoke,
    Ok,
    Fail,
    Info,
}

/// <summary>
/// One line of a history. A process (a client worker) has at most one call open: each completion
/// belongs to the last invoke of the same process. Times are microseconds on one clock.
/// </summary>
public sealed record Operation
{
    public required int Process { get; init; }

    public required OpType Type { get; init; }

    public required OpFunction Function { get; init; }

    public required long Time { get; init; }

    /// <summary>For appends: the message text (unique per history).</summary>
    public string? Value { get; init; }

    /// <summary>For an acknowledged append: the sequence number the server gave it.</summary>
    public long? Seq { get; init; }

    /// <summary>For reads: the first sequence number asked for, and how many at most.</summary>
    public long? ReadFrom { get; init; }

    public long? ReadLimit { get; init; }

    /// <summary>For a completed read: the messages returned, from <see cref="ReadFrom"/> on.</summary>
    public IReadOnlyList<string>? ReadValues { get; init; }

    /// <summary>For a completed count.</summary>
    public long? Count { get; init; }

    /// <summary>For an acknowledgement: the epoch and address of the server that gave it.</summary>
    public long? Epoch { get; init; }

    public string? Server { get; init; }

    public string? Error { get; init; }
}

/// <summary>A recorded history of message-store calls; safe to add to from several threads.</summary>
public sealed class History : RecordedHistory<Operation>
{
    public History()
    {
    }

    public History(IEnumerable<Operation> operations)
        : base(operations)
    {
    }

    public static History ReadJsonLines(TextReader reader) => ReadJsonLinesInto(new History(), reader, "an operation");
}

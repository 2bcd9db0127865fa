namespace Understudy.Core.StateMachines;

/// <summary>
/// How many messages the store keeps (<c>--retention-messages</c>, <c>--retention-bytes</c>, <c>--retention-age</c>);
/// the default keeps everything. Each limit is applied as every message is applied, from the log alone (counts, text
/// bytes, and the log time the primary stamped into each entry), so every replica removes the same messages.
/// </summary>
public sealed record MessageRetention
{
    public static readonly MessageRetention KeepEverything = new();

    /// <summary>Keep at most the newest this many messages.</summary>
    public long? Messages { get; init; }

    /// <summary>Keep at most the newest messages whose text totals this many bytes.</summary>
    public long? Bytes { get; init; }

    /// <summary>
    /// Keep only messages whose log time is at most this much older than the newest message's: when a message is
    /// applied, those older than its log time minus this age are removed.
    /// </summary>
    public TimeSpan? MaxAge { get; init; }

    /// <summary>Throws with a readable message when a value is out of range.</summary>
    public void Validate()
    {
        if (Messages is < 1)
        {
            throw new ArgumentException($"retention by messages must keep at least 1 (got {Messages})");
        }

        if (Bytes is < 1)
        {
            throw new ArgumentException($"retention by bytes must keep at least 1 byte (got {Bytes})");
        }

        if (MaxAge is { } age && age < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentException($"retention by age must keep at least 1 ms (got {age})");
        }
    }
}

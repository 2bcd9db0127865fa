using System.Globalization;
using System.Text;

namespace Understudy.Checking.Linearizability;

/// <summary>What the checker concluded, for one key or for a whole history.</summary>
public enum LinearizabilityVerdict
{
    Linearizable,
    NotLinearizable,

    /// <summary>The budget ran out (or the check was cancelled) before the search finished.</summary>
    Unknown,
}

/// <summary>How the checker runs.</summary>
public sealed record LinearizabilityOptions
{
    /// <summary>Wall-clock time for the whole check; keys not finished by then are <see cref="LinearizabilityVerdict.Unknown"/>. Null: no limit.</summary>
    public TimeSpan? Budget { get; init; }

    /// <summary>Keys are independent, so they are searched in parallel, on at most this many threads.</summary>
    public int MaxDegreeOfParallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>For each non-linearizable key, also search for the shortest failing prefix (a few more searches of that key).</summary>
    public bool FindSmallestWindow { get; init; } = true;
}

/// <summary>
/// The shortest prefix (by time) of one key's history that is already not linearizable, and within it the
/// operations that explain why.
/// </summary>
public sealed record FailingWindow
{
    public required string Key { get; init; }

    /// <summary>The window is every event of the key up to and including this time (microseconds).</summary>
    public required long EndsAt { get; init; }

    /// <summary>Whether the window was shortened to the smallest failing prefix (false: the budget ran out first, or it was not asked for).</summary>
    public required bool Minimal { get; init; }

    /// <summary>Every operation of the key invoked within the window, in invoke order.</summary>
    public required IReadOnlyList<KvOperation> Operations { get; init; }

    /// <summary>The operations that explain the failure: the one that could not be placed, those concurrent with it, and the write its state came from.</summary>
    public required IReadOnlyList<KvOperation> Involved { get; init; }

    /// <summary>The longest order of the window's operations the search could linearize.</summary>
    public required IReadOnlyList<KvOperation> LongestLinearization { get; init; }

    /// <summary>The operation that completed while it could not be placed after <see cref="LongestLinearization"/>.</summary>
    public required KvOperation Unplaced { get; init; }

    public required string Explanation { get; init; }

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"key {Key}: not linearizable by {KvOperation.Milliseconds(EndsAt)} ");
        text.Append(Minimal ? "(the shortest failing prefix" : "(the whole history; not shortened");
        text.Append(CultureInfo.InvariantCulture, $", {Operations.Count} operations); involved:\n");
        foreach (var op in Involved)
        {
            text.Append("  ").Append(op.ToReportLine());
            if (op.Outcome == KvOutcome.Ok && op.CompletedAt > EndsAt)
            {
                text.Append("  (still open at the window's end)");
            }

            text.Append('\n');
        }

        text.Append(Explanation);
        return text.ToString();
    }
}

/// <summary>One key's verdict.</summary>
public sealed record KeyResult(string Key, LinearizabilityVerdict Verdict, int Operations, FailingWindow? Window)
{
    public override string ToString() => Window?.ToString() ?? $"key {Key}: {Verdict} ({Operations.ToString(CultureInfo.InvariantCulture)} operations)";
}

/// <summary>The verdict on a whole history: linearizable when every key is.</summary>
public sealed record LinearizabilityResult
{
    /// <summary>NotLinearizable when any key is; otherwise Unknown when any key ran out of budget; otherwise Linearizable.</summary>
    public required LinearizabilityVerdict Verdict { get; init; }

    public bool Linearizable => Verdict == LinearizabilityVerdict.Linearizable;

    /// <summary>Every key's result, ordered by key (ordinal).</summary>
    public required IReadOnlyList<KeyResult> Keys { get; init; }

    /// <summary>Operations judged: all but the failed ones, which are surely not applied and dropped.</summary>
    public required int OperationsChecked { get; init; }

    public required TimeSpan Elapsed { get; init; }

    /// <summary>The keys that are not linearizable.</summary>
    public IReadOnlyList<KeyResult> Failures => [.. Keys.Where(k => k.Verdict == LinearizabilityVerdict.NotLinearizable)];

    /// <summary>A summary line, then each non-linearizable key's failing window, then the keys left unknown.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{Verdict}: {OperationsChecked} operations over {Keys.Count} keys in {Elapsed.TotalMilliseconds:0.0} ms");
        foreach (var key in Keys.Where(k => k.Verdict != LinearizabilityVerdict.Linearizable))
        {
            text.Append('\n').Append(key);
        }

        return text.ToString();
    }
}

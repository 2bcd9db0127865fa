using Understudy.Protocol;

namespace Understudy.Client;

/// <summary>
/// How fresh a query's answer must be. The default, <see cref="Linearizable"/>, is answered by the primary under its
/// lease once its epoch has committed: it reflects every write acknowledged before the query was sent.
/// <see cref="BoundedStaleness"/> lets a backup answer, and is NOT linearizable.
/// </summary>
public readonly record struct ReadConsistency
{
    private ReadConsistency(TimeSpan? maxLag, NodeAddress server)
    {
        MaxLag = maxLag;
        Server = server;
    }

    /// <summary>Served by the primary: sees every write acknowledged before the query was sent.</summary>
    public static ReadConsistency Linearizable => default;

    /// <summary>For a bounded-staleness read, the lag allowed; null for a linearizable one.</summary>
    public TimeSpan? MaxLag { get; }

    /// <summary>For a bounded-staleness read, the server asked first (none: a backup the client picks).</summary>
    public NodeAddress Server { get; }

    /// <summary>True for the default, <see cref="Linearizable"/>.</summary>
    public bool IsLinearizable => MaxLag is null;

    /// <summary>
    /// NOT linearizable: a backup may answer, if it heard from its primary within <paramref name="maxLag"/> (by its own
    /// monotonic clock) and has applied everything that primary had then committed. The answer may miss writes
    /// acknowledged within about <paramref name="maxLag"/> (plus one network delay) before it, including this
    /// client's own; two such reads may even see the state go back, if they reach different backups. A backup
    /// that cannot serve it refuses, and the primary answers instead (linearizably). Use it to take read load off
    /// the primary where slightly old data is fine (a dashboard, a cache fill), never to read your own writes or
    /// before a compare-and-set.
    /// </summary>
    /// <param name="maxLag">At least 1 ms.</param>
    /// <param name="server">A server to ask first; by default a backup the client learns of from the monitor.</param>
    public static ReadConsistency BoundedStaleness(TimeSpan maxLag, NodeAddress server = default)
    {
        if (maxLag < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentOutOfRangeException(nameof(maxLag), maxLag, "a bounded-staleness read allows at least 1 ms of lag");
        }

        return new ReadConsistency(maxLag, server);
    }

    public override string ToString() => MaxLag is { } lag ? $"bounded staleness ({lag.TotalMilliseconds:0} ms)" : "linearizable";
}

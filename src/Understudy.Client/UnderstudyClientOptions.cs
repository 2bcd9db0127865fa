using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Core.Client;
using Understudy.Protocol;

namespace Understudy.Client;

/// <summary>How an <see cref="UnderstudyClient"/> finds the cluster and how patient it is.</summary>
public sealed record UnderstudyClientOptions
{
    /// <summary>
    /// Every monitor's client address (the original's port 9001; a group's monitors take 9001, 9011, 9021... under
    /// `understudy up`). Any reachable one serves configuration and subscriptions; operator commands go to the active one.
    /// </summary>
    public IReadOnlyList<NodeAddress> Monitors { get; init; } = [new("127.0.0.1", 9001)];

    /// <summary>A group of one monitor: the first of <see cref="Monitors"/>; setting it replaces the list.</summary>
    public NodeAddress Monitor
    {
        get => Monitors.Count > 0 ? Monitors[0] : NodeAddress.None;
        init => Monitors = [value];
    }

    /// <summary>Deadlines, backoff and what to do with no primary known.</summary>
    public ClientOptions Retry { get; init; } = new();

    /// <summary>Names this client's writes for deduplication; random when null.</summary>
    public ulong? ClientId { get; init; }

    /// <summary>How often the client checks its calls' deadlines and retries; unused when <see cref="Loop"/> is set (the loop's own interval applies).</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// A loop shared with other clients in this process (one thread of work and one tick timer for all of them), or null
    /// for a loop of the client's own. The caller owns a shared loop: dispose it after the clients on it.
    /// </summary>
    public ClientLoop? Loop { get; init; }

    /// <summary>
    /// Where the caller's code after an awaited call runs: on the thread pool (the default, safe for any caller) or on
    /// the thread that read the answer (<see cref="CallResumption.Reader"/>: one hand-off fewer per call, for callers that
    /// never block after an await).
    /// </summary>
    public CallResumption ResumeOn { get; init; } = CallResumption.ThreadPool;

    public ILoggerFactory Loggers { get; init; } = NullLoggerFactory.Instance;

    /// <summary>
    /// The longest <see cref="UnderstudyClient.DisposeAsync"/> waits for its connections to close; past it they are
    /// left to finish on their own, so an unreachable or frozen monitor never holds up the caller's <c>await using</c>.
    /// </summary>
    public TimeSpan DisposeTimeout { get; init; } = TimeSpan.FromSeconds(2);
}

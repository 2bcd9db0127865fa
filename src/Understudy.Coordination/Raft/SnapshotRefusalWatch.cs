using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;

namespace Understudy.Coordination.Raft;

/// <summary>
/// The logger factory the coordinator hands to DotNext: it forwards every line to the host's factory as it was, and
/// tells the coordinator when a follower refused a snapshot the leader sent it (see <see cref="RaftCoordinator"/>'s
/// remarks on a refused snapshot). DotNext 6.12 reports that only in its log: the leader's replicator logs
/// "Installing snapshot at index N for member M" before it sends one, and "Replication of M is failed" when the
/// answer is a refusal; a request that timed out logs neither the refusal nor anything else on that logger.
/// </summary>
internal sealed class SnapshotRefusalWatch(ILoggerFactory inner, Action<EndPoint, long> refused) : ILoggerFactory
{
    // DotNext's event names (DotNext.Net.Cluster.Consensus.Raft.LogMessages, 6.12).
    private const string InstallingSnapshot = "DotNext.Net.Cluster.InstallingSnapshot";
    private const string ReplicationFailed = "DotNext.Net.Cluster.ReplicationFailed";

    // Member → index of the snapshot last sent to it whose answer has not been a refusal yet.
    private readonly ConcurrentDictionary<EndPoint, long> _sent = new();

    private long _snapshotsSeen;

    /// <summary>
    /// How many snapshot sends this watch has recognised. A test checks it after a catch-up that must have used a
    /// snapshot: were DotNext to rename the event or its state keys, the watch would go blind, and that test fails.
    /// </summary>
    internal long SnapshotsSeen => Interlocked.Read(ref _snapshotsSeen);

    public ILogger CreateLogger(string categoryName) => new Watch(this, inner.CreateLogger(categoryName));

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    // The host's factory belongs to the host, which disposes it.
    public void Dispose()
    {
    }

    private void Observe(string eventName, object? state)
    {
        if (Member(state) is not { } member)
        {
            return;
        }

        if (eventName == InstallingSnapshot)
        {
            _sent[member] = Index(state);
            Interlocked.Increment(ref _snapshotsSeen);
        }
        else if (_sent.TryRemove(member, out var index))
        {
            // A refusal right after a snapshot. A rejected append that follows a snapshot whose answer was
            // accepted also lands here: the coordinator's answer to a false alarm is only a newer snapshot.
            refused(member, index);
        }
    }

    private static EndPoint? Member(object? state) => Value(state, "Member") as EndPoint;

    private static long Index(object? state) => Value(state, "EntryIndex") is long index ? index : -1;

    private static object? Value(object? state, string key)
    {
        if (state is IReadOnlyList<KeyValuePair<string, object?>> values)
        {
            foreach (var (name, value) in values)
            {
                if (name == key)
                {
                    return value;
                }
            }
        }

        return null;
    }

    private sealed class Watch(SnapshotRefusalWatch owner, ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        // The two lines watched are Information and Warning: they must reach Log even where the host shows less.
        public bool IsEnabled(LogLevel logLevel) => logLevel is LogLevel.Information or LogLevel.Warning || inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Name is InstallingSnapshot or ReplicationFailed)
            {
                owner.Observe(eventId.Name, state);
            }

            if (inner.IsEnabled(logLevel))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}

using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Coordination.Raft;

namespace Understudy.Coordination.Tests.Raft;

/// <summary>
/// The watch behind the coordinator's answer to DotNext 6.12's refused-snapshot wedge: a refusal is a failed
/// replication right after a snapshot was sent to the same member, and nothing else. Fed here with lines shaped as
/// DotNext logs them (event name and structured state); that DotNext still logs them so is checked by the
/// replacement test, which requires the watch to have recognised a real snapshot send.
/// </summary>
public sealed class SnapshotRefusalWatchTests
{
    private static readonly EndPoint A = new IPEndPoint(IPAddress.Loopback, 7001);
    private static readonly EndPoint B = new IPEndPoint(IPAddress.Loopback, 7002);

    [Fact]
    public void A_failed_replication_right_after_a_snapshot_to_the_same_member_is_a_refusal_of_that_snapshot()
    {
        var refusals = new List<(EndPoint, long)>();
        using var watch = new SnapshotRefusalWatch(NullLoggerFactory.Instance, (m, i) => refusals.Add((m, i)));
        var log = watch.CreateLogger("DotNext.Net.Cluster.Consensus.Raft.RaftCluster");

        Sent(log, A, 5);
        Failed(log, A);

        Assert.Equal([(A, 5L)], refusals);
        Assert.Equal(1, watch.SnapshotsSeen);
    }

    [Fact]
    public void A_failed_replication_without_a_snapshot_before_it_or_for_another_member_is_not_a_refusal()
    {
        var refusals = new List<(EndPoint, long)>();
        using var watch = new SnapshotRefusalWatch(NullLoggerFactory.Instance, (m, i) => refusals.Add((m, i)));
        var log = watch.CreateLogger("DotNext.Net.Cluster.Consensus.Raft.RaftCluster");

        Failed(log, A);
        Sent(log, A, 5);
        Failed(log, B);
        Assert.Empty(refusals);

        // One refusal per snapshot sent: the second failure has no snapshot before it.
        Failed(log, A);
        Failed(log, A);
        Assert.Equal([(A, 5L)], refusals);
    }

    [Fact]
    public void Every_line_reaches_the_hosts_loggers_unchanged()
    {
        var lines = new List<string>();
        using var watch = new SnapshotRefusalWatch(new ListLoggerFactory(lines), (_, _) => { });
        var log = watch.CreateLogger("x");

        Sent(log, A, 5);
        log.Log(LogLevel.Warning, new EventId(3, "Other"), "something else", null, (text, _) => text);

        Assert.Equal(["Installing snapshot at index 5 for member " + A, "something else"], lines);
    }

    // Direct Log calls, as DotNext's generated logging makes them; the state is built only for the test.
#pragma warning disable CA1873 // a test's logger is always enabled, so nothing is evaluated in vain
    private static void Sent(ILogger log, EndPoint member, long index) =>
        log.Log(LogLevel.Information, new EventId(1, "DotNext.Net.Cluster.InstallingSnapshot"),
            new List<KeyValuePair<string, object?>> { new("EntryIndex", index), new("Member", member) },
            null, (_, _) => $"Installing snapshot at index {index} for member {member}");

    private static void Failed(ILogger log, EndPoint member) =>
        log.Log(LogLevel.Warning, new EventId(2, "DotNext.Net.Cluster.ReplicationFailed"),
            new List<KeyValuePair<string, object?>> { new("Member", member), new("EntryIndex", 0L) },
            null, (_, _) => $"Replication of {member} is failed");
#pragma warning restore CA1873

    private sealed class ListLoggerFactory(List<string> lines) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(lines);

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }
    }

    private sealed class ListLogger(List<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Add(formatter(state, exception));
    }
}

/// <summary>
/// The coordinator's answer to a refused snapshot, in a real group: the leader writes a newer snapshot at once,
/// long before <see cref="RaftCoordinatorOptions.SnapshotEvery"/> changes would have made one.
/// </summary>
public sealed class RefusedSnapshotAnswerTests
{
    [Fact]
    public async Task A_refusal_seen_on_the_leader_makes_it_write_a_newer_snapshot_at_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup(snapshotEvery: 1000);
        var (leader, next) = await group.StartAndCommitAsync(changes: 1, firstPort: 8090, ct);
        var folders = group.Running.Select(i => new DirectoryInfo(Path.Combine(group.OptionsOf(i).DataDirectory, "raft", "snapshots"))).ToArray();
        Assert.All(folders, f => Assert.Empty(Snapshots(f)));

        // Stands in for the watch (DotNext's wedge needs a timing no test can produce on demand), on whichever
        // member leads at the time; the coordinator acts at most once a second, so asking again is harmless.
        await Understudy.Orchestration.Polling.Poll.UntilAsync(
            () =>
            {
                foreach (var i in group.Active())
                {
                    group[i].OnSnapshotRefused(new IPEndPoint(IPAddress.Loopback, 1), 0);
                }

                return folders.Any(f => Snapshots(f).Length > 0);
            },
            TimeSpan.FromSeconds(30),
            "the leader writes a newer snapshot after a refusal",
            () => $"snapshots: [{string.Join(", ", folders.SelectMany(Snapshots))}]; {group.Describe()}; {group.Log()}", ct);

        leader = await group.WaitForSingleLeaderAsync("after the snapshot", ct);
        // The configuration is untouched by the no-op entries that carried the snapshot.
        Assert.True((await group[leader].LoadAsync(ct)).SameAs(next));
    }

    private static string[] Snapshots(DirectoryInfo folder) =>
        folder.Exists ? [.. folder.EnumerateFiles("*-*").Select(f => f.Name)] : [];
}

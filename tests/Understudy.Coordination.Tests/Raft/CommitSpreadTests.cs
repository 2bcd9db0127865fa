using System.Diagnostics;
using Understudy.Orchestration.Polling;

namespace Understudy.Coordination.Tests.Raft;

/// <summary>
/// A follower monitor tells its subscribed clients of a new primary when it applies the committed configuration, and
/// Raft tells a follower of a commit only with the leader's next round. The coordinator runs that round at once after
/// a commit (RaftCoordinator.SpreadCommit) instead of leaving it to the next heartbeat.
/// </summary>
public sealed class CommitSpreadTests
{
    // Slow timers, so "the next heartbeat" and "at once" are far apart: DotNext's leader heartbeats every half of its
    // election timeout (2 s or more here) and the confirmation loop runs every 3 s.
    private static readonly TimeSpan Lower = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan Upper = TimeSpan.FromSeconds(4.6);
    private static readonly TimeSpan Confirmation = TimeSpan.FromSeconds(3);

    // Well under either period; a forced round on loopback takes milliseconds.
    private static readonly TimeSpan WithinARound = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task A_follower_applies_a_committed_change_within_a_round_not_at_the_next_heartbeat()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup(tune: o => o with { LowerElectionTimeout = Lower, UpperElectionTimeout = Upper, ConfirmationInterval = Confirmation });
        await group.StartAllAsync(ct);
        var observed = group.ObserveConfigs();

        var leader = await group.WaitForConfirmedLeaderAsync("before the write", ct);
        var initial = await group[leader].LoadAsync(ct);

        // Write right after a confirmation round of the loop, so neither the loop nor DotNext's heartbeat runs
        // another for seconds: only a round started because of the commit can carry it to the followers in time.
        var confirmedBefore = group[leader].Leadership.ConfirmedUntil;
        await Poll.UntilAsync(
            () => group[leader].Leadership.ConfirmedUntil > confirmedBefore,
            TimeSpan.FromSeconds(30),
            "waiting for the leader's next confirmation round",
            group.Describe,
            ct);
        var next = Configs.Next(initial, 8090);
        var written = await group[leader].CompareAndSetAsync(initial.Version, next, ct);
        Assert.True(written.Committed, $"the write did not commit: {written.Current}");
        var committedAt = Stopwatch.GetTimestamp();

        var followers = group.Running.Where(i => i != leader).ToArray();
        await Poll.UntilAsync(
            () => followers.All(i => observed.TryGetValue(i, out var c) && c.SameAs(next)),
            WithinARound,
            $"every follower applies the committed configuration within {WithinARound.TotalMilliseconds:0} ms of the commit (the next heartbeat is {Lower.TotalMilliseconds / 2:0} ms or more away)",
            () => $"{Stopwatch.GetElapsedTime(committedAt).TotalMilliseconds:0} ms after the commit; followers' copies: " +
                string.Join("; ", followers.Select(i => observed.TryGetValue(i, out var c) ? $"m{i} {c}" : $"m{i} none")) + "; " + group.Describe(),
            ct);
    }
}

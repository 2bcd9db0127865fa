using System.Collections.Concurrent;
using System.Diagnostics;
using Understudy.Coordination.Raft;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Coordination.Tests.Raft;

public sealed class RaftCoordinatorTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_fresh_group_elects_one_active_monitor_that_every_member_names()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);

        var leader = await group.WaitForSingleLeaderAsync("fresh group", ct);

        // Polled as a whole: on a loaded machine an election may repeat, and each check is about one stable leader.
        await Poll.UntilAsync(
            () =>
            {
                var active = group.Active();
                if (active.Length != 1)
                {
                    return false;
                }

                leader = active[0];
                var self = group.OptionsOf(leader).Self.Heartbeat;
                var view = group[leader].Leadership;
                var peers = group[leader].Peers;
                return view.Term > 0 && view.HasQuorum && view.ConfirmedUntil > Stopwatch.GetTimestamp() &&
                    group.Running.All(i => group[i].Leadership.HasQuorum && group[i].Leadership.Active == self) &&
                    peers.Count == 3 &&
                    peers.Single(p => p.IsSelf).Address == self &&
                    peers.Count(p => p.IsActive) == 1 && peers.Single(p => p.IsActive).Address == self &&
                    peers.All(p => p.State == MonitorPeerState.Up);
            },
            Deadline, "one confirmed leader with a quorum, named by all, seeing every member up",
            () => group.Describe() + "; leader's peers: " + string.Join(", ", group[leader].Peers), ct);
    }

    [Fact]
    public async Task A_compare_and_set_commits_through_the_leader_and_every_follower_observes_it()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var observed = group.ObserveConfigs();

        var leader = await group.WaitForSingleLeaderAsync("before the write", ct);
        var initial = await group[leader].LoadAsync(ct);
        Assert.Equal(ClusterConfig.Initial.Version, initial.Version);

        var next = Configs.Next(initial, 8090);
        var written = await group.CompareAndSetAsync(initial.Version, next, ct);
        Assert.True(written.Committed);
        Assert.True(written.Current.SameAs(next));

        await Poll.UntilAsync(() => Enumerable.Range(0, group.Size).All(i => observed.TryGetValue(i, out var c) && c.SameAs(next)), Deadline,
            "every member raises ConfigChanged with the committed configuration",
            () => string.Join("; ", observed.Select(kv => $"m{kv.Key} {kv.Value}")), ct);
        foreach (var i in group.Running)
        {
            Assert.True((await group[i].LoadAsync(ct)).SameAs(next));
        }

        // The same expected version again: refused, with the configuration now stored.
        var stale = await group.CompareAndSetAsync(initial.Version, Configs.Next(initial, 8089), ct);
        Assert.False(stale.Committed);
        Assert.True(stale.Current.SameAs(next));

        // A follower refuses writes and names the active monitor.
        leader = await group.WaitForSingleLeaderAsync("before the follower's write", ct);
        Assert.True((await group[leader].LoadAsync(ct)).SameAs(next));
        var follower = group.Running.First(i => i != leader);
        var refused = await Assert.ThrowsAsync<NotActiveMonitorException>(async () =>
            await group[follower].CompareAndSetAsync(next.Version, Configs.Next(next, 8088), ct));
        Assert.Equal(group[follower].Leadership.Active, refused.Active);
        Assert.Contains(refused.Active, group.Running.Where(i => i != follower).Select(i => group.OptionsOf(i).Self.Heartbeat));
        leader = await group.WaitForSingleLeaderAsync("after the follower's refusal", ct);
        Assert.True((await group[leader].LoadAsync(ct)).SameAs(next));
    }

    [Fact]
    public async Task When_the_leader_dies_a_new_leader_in_a_higher_term_is_confirmed_only_after_the_old_lease_ran_out()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var oldLeader = await group.WaitForConfirmedLeaderAsync("before the crash", ct);
        var old = group[oldLeader];

        // The first confirmed leadership each survivor reports (the event fires on the first confirmation of a term).
        var firstConfirmed = new ConcurrentDictionary<int, Leadership>();
        foreach (var i in group.Running.Where(i => i != oldLeader))
        {
            var member = i;
            group[i].LeadershipChanged += l =>
            {
                if (l.IsActive && l.ConfirmedUntil > 0)
                {
                    firstConfirmed.TryAdd(member, l);
                }
            };
        }

        var oldTerm = old.Leadership.Term;
        await group.StopAsync(oldLeader);

        // Its lease as it last stood: nothing refreshes it after the stop.
        var oldLastConfirmedUntil = old.Leadership.ConfirmedUntil;

        var newLeader = await group.WaitForSingleLeaderAsync("after the crash", ct);
        Assert.NotEqual(oldLeader, newLeader);
        await Poll.UntilAsync(() => firstConfirmed.ContainsKey(newLeader), Deadline, "new leader's first confirmation",
            () => group.Describe() + "; first confirmed: " + string.Join(", ", firstConfirmed), ct);

        // The survivors are two of three: a quorum. The new leader sees the dead member unreachable.
        var dead = group.OptionsOf(oldLeader).Self.Heartbeat;
        await Poll.UntilAsync(
            () => group.Running.All(i => group[i].Leadership.HasQuorum) &&
                  group[newLeader].Peers.Any(p => p.Address == dead && p.State == MonitorPeerState.Unreachable),
            Deadline, "survivors keep a quorum and the new leader sees the old one unreachable",
            () => group.Describe() + "; peers: " + string.Join(", ", group[newLeader].Peers), ct);

        var first = firstConfirmed[newLeader];
        Assert.True(first.Term > oldTerm, $"new term {first.Term} must be above the old {oldTerm}");

        // One process, one clock: the drift allowance is already inside LeaseTicks, so no further slack is due.
        var newWindowStart = first.ConfirmedUntil - group[newLeader].LeaseTicks;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"gap between the old lease's end and the new leader's first confirmed window: {(newWindowStart - oldLastConfirmedUntil) * 1000.0 / Stopwatch.Frequency:0.###} ms");
        Assert.True(newWindowStart >= oldLastConfirmedUntil,
            $"the new leader's first confirmed window starts at {newWindowStart}, before the old leader's lease ended at {oldLastConfirmedUntil} " +
            $"({(oldLastConfirmedUntil - newWindowStart) * 1000.0 / Stopwatch.Frequency:0.###} ms of overlap)");
    }

    [Fact]
    public async Task A_restarted_member_rejoins_from_its_data_folder_and_sees_the_committed_configuration()
    {
        var ct = TestContext.Current.CancellationToken;

        // Snapshot every two changes, so the restart restores from a snapshot and replays the tail of the log.
        await using var group = new RaftGroup(snapshotEvery: 2);
        var (_, config) = await group.StartAndCommitAsync(changes: 3, firstPort: 8090, ct);
        var leader = await group.WaitForSingleLeaderAsync("before the restart", ct);
        var follower = group.Running.First(i => i != leader);
        await Poll.UntilAsync(async t => (await group[follower].LoadAsync(t)).SameAs(config), Deadline,
            "follower caught up before its restart", async t => (await group[follower].LoadAsync(t)).ToString(), ct);
        await group.StopAsync(follower);

        // A change the stopped member misses: two of three still commit it.
        var missed = Configs.Next(config, 8099);
        Assert.True((await group.CompareAndSetAsync(config.Version, missed, ct)).Committed);

        var snapshots = Path.Combine(group.OptionsOf(follower).DataDirectory, "raft", "snapshots");
        Assert.NotEmpty(Directory.EnumerateFiles(snapshots));

        var restarted = await group.StartAsync(follower, ct);
        await Poll.UntilAsync(async t => (await restarted.LoadAsync(t)).SameAs(missed), Deadline,
            "restarted member sees the change it missed", async t => (await restarted.LoadAsync(t)).ToString(), ct);
        var leaderAfter = await group.WaitForSingleLeaderAsync("after the restart", ct);
        Assert.Equal(group.OptionsOf(leaderAfter).Self.Heartbeat, restarted.Leadership.Active);
    }

    [Fact]
    public async Task Snapshots_keep_the_raft_log_bounded()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup(snapshotEvery: 4);
        var (leader, config) = await group.StartAndCommitAsync(changes: 200, firstPort: 8000, ct);

        // 200 entries fill nine 4 KiB pages of DotNext's log when nothing is compacted; with snapshots the pages
        // the snapshot covers are deleted (in the background, hence the poll) and old snapshots with them.
        var raft = Path.Combine(group.OptionsOf(leader).DataDirectory, "raft");
        string[] Pages() => [.. Directory.EnumerateFiles(Path.Combine(raft, "wal", "data")).Concat(Directory.EnumerateFiles(Path.Combine(raft, "wal", "metadata")))];
        string[] Snapshots() => [.. Directory.EnumerateFiles(Path.Combine(raft, "snapshots"))];
        await Poll.UntilAsync(() => Pages().Length <= 5 && Snapshots().Length <= 2, Deadline,
            "log pages and snapshots compacted (at most 5 pages, 2 snapshots)",
            () => $"pages: {string.Join(", ", Pages().Select(Path.GetFileName))}; snapshots: {string.Join(", ", Snapshots().Select(Path.GetFileName))}", ct);
        leader = await group.WaitForSingleLeaderAsync("after the writes", ct);
        Assert.True((await group[leader].LoadAsync(ct)).SameAs(config));
    }

    [Fact]
    public async Task A_whole_group_restarted_on_its_folders_keeps_its_configuration_and_moves_to_a_higher_term()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var leader = await group.WaitForSingleLeaderAsync("first boot", ct);
        var next = Configs.Next(ClusterConfig.Initial, 8090);
        Assert.True((await group.CompareAndSetAsync(0, next, ct)).Committed);
        var term = group.Running.Max(i => group[i].Leadership.Term);

        for (var i = 0; i < group.Size; i++)
        {
            await group.StopAsync(i);
        }

        await group.StartAllAsync(ct);
        var again = await group.WaitForSingleLeaderAsync("second boot", ct);
        Assert.True(group[again].Leadership.Term > term, $"term {group[again].Leadership.Term} after the restart, {term} before");
        // Every member, the leader included, ends with the committed configuration. Right after a whole-group restart the
        // leadership can still move (members join one upper election timeout late), and a member that is no longer the
        // leader answers from its copy, which may not have replayed the log yet: hence a poll, not one read.
        foreach (var i in group.Running)
        {
            await Poll.UntilAsync(async t => (await group[i].LoadAsync(t)).SameAs(next), Deadline,
                $"m{i} has the configuration after the restart", async t => (await group[i].LoadAsync(t)).ToString(), ct);
        }
    }

    [Fact]
    public async Task An_isolated_leader_loses_its_quorum_and_stops_being_active()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var leader = await group.WaitForConfirmedLeaderAsync("before the others stop", ct);
        var isolated = group[leader];

        foreach (var i in group.Running.Where(i => i != leader).ToArray())
        {
            await group.StopAsync(i);
        }

        await Poll.UntilAsync(() => !isolated.Leadership.HasQuorum && !isolated.Leadership.IsActive, Deadline,
            "leader alone loses its quorum and steps down", () => isolated.Leadership.ToString(), ct);
        Assert.Equal(0, isolated.Leadership.ConfirmedUntil);
        await Assert.ThrowsAsync<NotActiveMonitorException>(async () =>
            await isolated.CompareAndSetAsync(0, Configs.Next(ClusterConfig.Initial, 8090), ct));
        Assert.Contains(group.Lines, l => l.Contains("monitor group: no quorum (reached 1 of 3)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_leader_stays_confirmed_while_one_follower_is_silently_partitioned()
    {
        // A silent member (dropped packets, not a refused port) makes every heartbeat round wait for its request
        // timeout; the leader still has its quorum and must keep confirming, or it grants no lease at all.
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup(proxied: true);
        await group.StartAllAsync(ct);
        var leader = await group.WaitForConfirmedLeaderAsync("before the cut", ct);
        var follower = group.Running.First(i => i != leader);
        group.Cut(follower, cut: true);
        var cutAt = Stopwatch.GetTimestamp();

        // Confirmed until three leases past the cut: only rounds that started well after the cut, and reached the
        // other follower in time, can give that.
        await Poll.UntilAsync(
            () => group.Active() is [var active] && group[active].Leadership.ConfirmedUntil > cutAt + (3 * group[active].LeaseTicks),
            Deadline, "the leader keeps confirming its leadership with one follower silent",
            () => $"{group.Describe()}; cut at {cutAt}, request timeout {group.OptionsOf(leader).RequestTimeout.TotalMilliseconds} ms, lease {group.OptionsOf(leader).LeaseDuration.TotalMilliseconds} ms", ct);
        group.Cut(follower, cut: false);
    }

    [Fact]
    public void A_request_timeout_that_lets_one_silent_member_outlast_the_lease_is_refused()
    {
        MonitorGroupMember Member(int port) => new(new NodeAddress("127.0.0.1", port), new NodeAddress("127.0.0.1", port + 1), new NodeAddress("127.0.0.1", port + 2));
        var options = new RaftCoordinatorOptions
        {
            Self = Member(20000),
            Peers = [Member(20010), Member(20020)],
            DataDirectory = "unused",
            RequestTimeout = TimeSpan.FromMilliseconds(150),
        };
        (options with { RequestTimeout = TimeSpan.FromMilliseconds(60) }).Validate();
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains("RequestTimeout", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_partitioned_leader_confirms_nothing_past_one_lease_from_the_partition()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup(proxied: true);
        await group.StartAllAsync(ct);
        var leader = await group.WaitForConfirmedLeaderAsync("before the partition", ct);
        var isolated = group[leader];

        // Every ConfirmedUntil it shows from now on, whether raised or polled.
        long latestConfirmed = 0;
        isolated.LeadershipChanged += l => InterlockedMax(ref latestConfirmed, l.ConfirmedUntil);

        // Silence, not resets: every member's inbound traffic is dropped, so no round can reach a quorum.
        for (var i = 0; i < group.Size; i++)
        {
            group.Cut(i, cut: true);
        }

        var partitionedAt = Stopwatch.GetTimestamp();
        await Poll.UntilAsync(
            () =>
            {
                var now = isolated.Leadership;
                InterlockedMax(ref latestConfirmed, now.ConfirmedUntil);
                return !now.HasQuorum && !now.IsActive;
            },
            Deadline, "partitioned leader loses its quorum and steps down", () => isolated.Leadership.ToString(), ct);

        // A round that started before the partition may still be acknowledged; none that started after it can be.
        var confirmed = Interlocked.Read(ref latestConfirmed);
        Assert.True(confirmed <= partitionedAt + isolated.LeaseTicks,
            $"confirmed until {(confirmed - partitionedAt) * 1000.0 / Stopwatch.Frequency:0.###} ms after the partition; the lease is {isolated.Options.LeaseDuration.TotalMilliseconds} ms");
        Assert.Equal(0, isolated.Leadership.ConfirmedUntil);

        // Healed, the group elects a leader again.
        for (var i = 0; i < group.Size; i++)
        {
            group.Cut(i, cut: false);
        }

        await group.WaitForSingleLeaderAsync("after the partition heals", ct);
    }

    [Fact]
    public async Task A_starting_member_stays_out_of_the_group_for_one_upper_election_timeout()
    {
        // A restarted member has forgotten when it last heard from the leader; joining at once, it could vote a
        // second leader in while a lease it acknowledged before the restart still runs.
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        var options = group.OptionsOf(0);
        var watch = Stopwatch.StartNew();
        await group.StartAsync(0, ct);
        Assert.True(watch.Elapsed >= options.UpperElectionTimeout,
            $"joined after {watch.Elapsed.TotalMilliseconds:0.#} ms; must wait at least {options.UpperElectionTimeout.TotalMilliseconds} ms");
    }

    [Fact]
    public void Options_that_cannot_work_are_refused_at_construction()
    {
        var a = new MonitorGroupMember(new NodeAddress("127.0.0.1", 7001), new NodeAddress("127.0.0.1", 9001), new NodeAddress("127.0.0.1", 9101));
        var b = new MonitorGroupMember(new NodeAddress("127.0.0.1", 7002), new NodeAddress("127.0.0.1", 9002), new NodeAddress("127.0.0.1", 9102));
        var c = new MonitorGroupMember(new NodeAddress("127.0.0.1", 7003), new NodeAddress("127.0.0.1", 9003), new NodeAddress("127.0.0.1", 9103));
        var good = new RaftCoordinatorOptions { Self = a, Peers = [b, c], DataDirectory = "/tmp/x" };
        good.Validate();

        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { Peers = [b] }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { Peers = [b, b] }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { DataDirectory = " " }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { UpperElectionTimeout = good.LowerElectionTimeout }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { MaxClockDrift = 0.6 }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { ConfirmationInterval = TimeSpan.FromSeconds(1) }));
        Assert.True(good.LeaseDuration < good.LowerElectionTimeout);

        // Windows that would overlap (or leave the range) are refused: two members timing out together split votes.
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { ElectionWindow = TimeSpan.FromMilliseconds(60) }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { ElectionWindow = TimeSpan.Zero }));
        Assert.Throws<ArgumentException>(() => new RaftCoordinator(good with { ElectionWindow = TimeSpan.FromMilliseconds(81) }));
    }

    [Theory]
    [InlineData(3, 150, 230, 10)]
    [InlineData(5, 150, 300, 10)]
    [InlineData(3, 400, 800, 50)]
    public void Every_members_election_window_lies_above_the_lease_bound_and_apart_from_the_others(int size, int lowerMs, int upperMs, int windowMs)
    {
        // ConfirmedUntil lasts LowerElectionTimeout from a round's start: it is sound only if no member, whatever its
        // rank, may time out (stand or vote) sooner. And a restart's silence of UpperElectionTimeout outlasts every window.
        var members = Enumerable.Range(0, size)
            .Select(i => new MonitorGroupMember(new NodeAddress("127.0.0.1", 7005 - i), new NodeAddress("127.0.0.1", 9001 + i), new NodeAddress("127.0.0.1", 9101 + i)))
            .ToList();
        var windows = members.Select(self =>
        {
            var options = new RaftCoordinatorOptions
            {
                Self = self,
                Peers = [.. members.Where(m => m != self)],
                DataDirectory = "/tmp/x",
                LowerElectionTimeout = TimeSpan.FromMilliseconds(lowerMs),
                UpperElectionTimeout = TimeSpan.FromMilliseconds(upperMs),
                ElectionWindow = TimeSpan.FromMilliseconds(windowMs),
            };
            options.Validate();
            Assert.True(options.LeaseDuration < TimeSpan.FromMilliseconds(options.ElectionWindowOf(self).LowerMs),
                $"member {self.Raft}: lease {options.LeaseDuration.TotalMilliseconds} ms must be under its lowest timeout {options.ElectionWindowOf(self).LowerMs} ms");

            // Every member computes the same windows for everyone (its own view of the ranks agrees with the others').
            Assert.Equal(members.Select(options.ElectionWindowOf), members.Select(m => new RaftCoordinatorOptions { Self = m, Peers = [.. members.Where(x => x != m)], DataDirectory = "/tmp/x", LowerElectionTimeout = options.LowerElectionTimeout, UpperElectionTimeout = options.UpperElectionTimeout, ElectionWindow = options.ElectionWindow }.ElectionWindowOf(m)));
            return options.ElectionWindowOf(self);
        }).Order().ToList();

        Assert.Equal(lowerMs, windows[0].LowerMs);
        Assert.Equal(upperMs, windows[^1].UpperMs);
        for (var i = 0; i < windows.Count; i++)
        {
            Assert.True(windows[i].LowerMs >= lowerMs && windows[i].UpperMs <= upperMs, $"window {windows[i]} leaves [{lowerMs}, {upperMs}]");
            Assert.Equal(windowMs, windows[i].UpperMs - windows[i].LowerMs);
            if (i > 0)
            {
                Assert.True(windows[i].LowerMs > windows[i - 1].UpperMs, $"windows {windows[i - 1]} and {windows[i]} overlap");
            }
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var seen = Interlocked.Read(ref target);
        while (value > seen)
        {
            var previous = Interlocked.CompareExchange(ref target, value, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }
}

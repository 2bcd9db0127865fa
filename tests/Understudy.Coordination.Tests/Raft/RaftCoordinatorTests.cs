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
        var active = group[leader];
        await Poll.UntilAsync(() => active.Leadership.ConfirmedUntil > Stopwatch.GetTimestamp(), Deadline,
            "leader's first confirmation round", group.Describe, ct);

        Assert.True(active.Leadership.HasQuorum);
        Assert.True(active.Leadership.Term > 0);
        await Poll.UntilAsync(() => group.Running.All(i => group[i].Leadership.HasQuorum), Deadline,
            "every member has a quorum", group.Describe, ct);

        var peers = active.Peers;
        Assert.Equal(3, peers.Count);
        Assert.Equal(group.OptionsOf(leader).Self.Heartbeat, Assert.Single(peers, p => p.IsActive).Address);
        Assert.Equal(group.OptionsOf(leader).Self.Heartbeat, Assert.Single(peers, p => p.IsSelf).Address);
        await Poll.UntilAsync(() => group[leader].Peers.All(p => p.State == MonitorPeerState.Up), Deadline,
            "the leader sees every member up", () => string.Join(", ", group[leader].Peers), ct);
    }

    [Fact]
    public async Task A_compare_and_set_commits_through_the_leader_and_every_follower_observes_it()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        var observed = new ConcurrentDictionary<int, ClusterConfig>();
        await group.StartAllAsync(ct);
        for (var i = 0; i < group.Size; i++)
        {
            var member = i;
            group[i].ConfigChanged += c => observed[member] = c;
        }

        var leader = await group.WaitForSingleLeaderAsync("before the write", ct);
        var initial = await group[leader].LoadAsync(ct);
        Assert.Equal(ClusterConfig.Initial.Version, initial.Version);

        var next = Configs.Next(initial, 8090);
        var written = await group[leader].CompareAndSetAsync(initial.Version, next, ct);
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
        var stale = await group[leader].CompareAndSetAsync(initial.Version, Configs.Next(initial, 8089), ct);
        Assert.False(stale.Committed);
        Assert.True(stale.Current.SameAs(next));
        Assert.True((await group[leader].LoadAsync(ct)).SameAs(next));

        // A follower refuses writes and names the active monitor.
        var follower = group.Running.First(i => i != leader);
        var refused = await Assert.ThrowsAsync<NotActiveMonitorException>(async () =>
            await group[follower].CompareAndSetAsync(next.Version, Configs.Next(next, 8088), ct));
        Assert.Equal(group.OptionsOf(leader).Self.Heartbeat, refused.Active);
        Assert.True((await group[leader].LoadAsync(ct)).SameAs(next));
    }

    [Fact]
    public async Task When_the_leader_dies_a_new_leader_in_a_higher_term_is_confirmed_only_after_the_old_lease_ran_out()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var oldLeader = await group.WaitForSingleLeaderAsync("before the crash", ct);
        var old = group[oldLeader];
        await Poll.UntilAsync(() => old.Leadership.ConfirmedUntil > 0, Deadline, "old leader confirmed", group.Describe, ct);

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
        await group.StartAllAsync(ct);
        var leader = await group.WaitForSingleLeaderAsync("before the writes", ct);
        var config = await group[leader].LoadAsync(ct);
        for (var i = 0; i < 3; i++)
        {
            var next = Configs.Next(config, 8090 + i);
            Assert.True((await group[leader].CompareAndSetAsync(config.Version, next, ct)).Committed);
            config = next;
        }

        var follower = group.Running.First(i => i != leader);
        await Poll.UntilAsync(async t => (await group[follower].LoadAsync(t)).SameAs(config), Deadline,
            "follower caught up before its restart", async t => (await group[follower].LoadAsync(t)).ToString(), ct);
        await group.StopAsync(follower);

        // A change the stopped member misses: two of three still commit it.
        var missed = Configs.Next(config, 8099);
        Assert.True((await group[leader].CompareAndSetAsync(config.Version, missed, ct)).Committed);

        var snapshots = Path.Combine(group.OptionsOf(follower).DataDirectory, "raft", "snapshots");
        Assert.NotEmpty(Directory.EnumerateFiles(snapshots));

        var restarted = await group.StartAsync(follower, ct);
        await Poll.UntilAsync(async t => (await restarted.LoadAsync(t)).SameAs(missed), Deadline,
            "restarted member sees the change it missed", async t => (await restarted.LoadAsync(t)).ToString(), ct);
        var leaderAfter = await group.WaitForSingleLeaderAsync("after the restart", ct);
        Assert.Equal(group.OptionsOf(leaderAfter).Self.Heartbeat, restarted.Leadership.Active);
    }

    [Fact]
    public async Task A_whole_group_restarted_on_its_folders_keeps_its_configuration_and_moves_to_a_higher_term()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var leader = await group.WaitForSingleLeaderAsync("first boot", ct);
        var next = Configs.Next(ClusterConfig.Initial, 8090);
        Assert.True((await group[leader].CompareAndSetAsync(0, next, ct)).Committed);
        var term = group[leader].Leadership.Term;

        for (var i = 0; i < group.Size; i++)
        {
            await group.StopAsync(i);
        }

        await group.StartAllAsync(ct);
        var again = await group.WaitForSingleLeaderAsync("second boot", ct);
        Assert.True(group[again].Leadership.Term > term, $"term {group[again].Leadership.Term} after the restart, {term} before");
        Assert.True((await group[again].LoadAsync(ct)).SameAs(next));
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
        var leader = await group.WaitForSingleLeaderAsync("before the isolation", ct);
        var isolated = group[leader];
        await Poll.UntilAsync(() => isolated.Leadership.ConfirmedUntil > 0, Deadline, "leader confirmed", group.Describe, ct);

        foreach (var i in group.Running.Where(i => i != leader).ToArray())
        {
            await group.StopAsync(i);
        }

        var isolatedAt = Stopwatch.GetTimestamp();
        await Poll.UntilAsync(() => !isolated.Leadership.HasQuorum && !isolated.Leadership.IsActive, Deadline,
            "isolated leader loses its quorum and steps down", () => isolated.Leadership.ToString(), ct);

        // No confirmation after the isolation: whatever it last confirmed ends within one lease of it.
        var confirmed = isolated.Leadership.ConfirmedUntil;
        Assert.True(confirmed <= isolatedAt + isolated.LeaseTicks, $"confirmed until {confirmed}, isolated at {isolatedAt}");
        await Assert.ThrowsAsync<NotActiveMonitorException>(async () =>
            await isolated.CompareAndSetAsync(0, Configs.Next(ClusterConfig.Initial, 8090), ct));
        Assert.Contains(group.Lines, l => l.Contains("monitor group: no quorum (reached 1 of 3)", StringComparison.Ordinal));
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
    }
}

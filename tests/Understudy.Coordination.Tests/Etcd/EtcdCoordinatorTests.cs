using System.Diagnostics;
using Understudy.Coordination.Etcd;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Coordination.Tests.Etcd;

/// <summary>
/// Several <see cref="EtcdCoordinator"/>s over one real etcd (started once for the class). Each test uses its own
/// cluster name, so its keys never meet another test's.
/// </summary>
public sealed class EtcdCoordinatorTests(EtcdServer etcd) : IClassFixture<EtcdServer>, IAsyncDisposable
{
    private readonly List<EtcdCoordinator> _coordinators = [];
    private readonly string _cluster = "test-" + Guid.NewGuid().ToString("N")[..12];

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Exactly_one_of_three_monitors_is_active_and_all_agree_on_it()
    {
        var group = await StartGroupAsync(3);

        var (leader, followers) = await WaitForOneActiveAsync(group, "electing one of three");

        Assert.Single(group, c => c.Leadership.IsActive);
        Assert.All(group, c => Assert.Equal(leader.Leadership.Term, c.Leadership.Term));
        Assert.True(leader.Leadership.Term > 0, "the term is the leader key's create revision, which is positive");
        Assert.True(leader.Leadership.ConfirmedUntil > Stopwatch.GetTimestamp(), "the active monitor's leadership is confirmed into the future");
        Assert.All(followers, f => Assert.Equal(0, f.Leadership.ConfirmedUntil));

        await Poll.UntilAsync(
            () => group.All(c => c.Peers.Count == 3),
            Poll.DefaultTimeout,
            "every monitor seeing the three registered",
            () => $"expected 3 peers each; saw {string.Join("; ", group.Select(c => $"{Self(c)}: {string.Join(",", c.Peers)}"))}",
            Token);
        foreach (var c in group)
        {
            var peers = c.Peers;
            Assert.All(peers, p => Assert.Equal(MonitorPeerState.Up, p.State));
            Assert.Equal(Self(leader), Assert.Single(peers, p => p.IsActive).Address);
            Assert.Equal(Self(c), Assert.Single(peers, p => p.IsSelf).Address);
        }
    }

    [Fact]
    public async Task The_active_monitor_commits_by_compare_and_set_and_followers_see_the_change()
    {
        var group = await StartGroupAsync(3);
        var (leader, followers) = await WaitForOneActiveAsync(group, "electing one of three");
        var seen = followers.Select(_ => new List<ClusterConfig>()).ToArray();
        for (var i = 0; i < followers.Length; i++)
        {
            var mine = seen[i];
            followers[i].ConfigChanged += c =>
            {
                lock (mine)
                {
                    mine.Add(c);
                }
            };
        }

        var initial = await leader.LoadAsync(Token);
        Assert.True(initial.SameAs(ClusterConfig.Initial), $"a missing config key reads as the initial configuration; read {initial}");

        var next = initial.WithMember(new MemberInfo(new NodeAddress("127.0.0.1", 8090), 1)) with { Epoch = 1, Primary = new NodeAddress("127.0.0.1", 8090) };
        var written = await leader.CompareAndSetAsync(initial.Version, next, Token);
        Assert.True(written.Committed, $"the active monitor's CAS on the current version commits; got {written.Current}");

        await Poll.UntilAsync(
            () => seen.All(s =>
            {
                lock (s)
                {
                    return s.Any(c => c.SameAs(next));
                }
            }),
            Poll.DefaultTimeout,
            "followers observing the committed configuration",
            () => $"expected every follower to raise ConfigChanged with {next}; saw {string.Join("; ", seen.Select(s => string.Join(",", s.Select(c => c.Version))))}",
            Token);
        foreach (var f in followers)
        {
            Assert.True((await f.LoadAsync(Token)).SameAs(next), "a follower loads what the leader committed");
        }

        await Poll.UntilAsync(
            () => followers.All(f => f.WatchNotifications > 0),
            Poll.DefaultTimeout,
            "followers' watches on the prefix reporting the change",
            () => $"expected every follower's watch to have fired; counts {string.Join(",", followers.Select(f => f.WatchNotifications))}",
            Token);

        // Stale: the version moved on, so the write is refused and the refusal carries what is stored.
        var stale = await leader.CompareAndSetAsync(initial.Version, initial with { Version = 1, Epoch = 7 }, Token);
        Assert.False(stale.Committed);
        Assert.True(stale.Current.SameAs(next), $"a refusal returns the stored configuration; got {stale.Current}");
        Assert.Equal(1, (await leader.LoadAsync(Token)).Epoch);

        // A follower may not write at all, and says who may.
        var refused = await Assert.ThrowsAsync<NotActiveMonitorException>(
            async () => await followers[0].CompareAndSetAsync(next.Version, next with { Version = next.Version + 1 }, Token));
        Assert.Equal(Self(leader), refused.Active);
        Assert.True((await leader.LoadAsync(Token)).SameAs(next), "the follower's attempt changed nothing");
    }

    [Fact]
    public async Task A_killed_active_monitor_is_replaced_after_its_lease_and_the_leaderships_never_overlap()
    {
        var group = await StartGroupAsync(3);
        var activatedAt = new long[group.Length];
        for (var i = 0; i < group.Length; i++)
        {
            var index = i;
            group[i].LeadershipChanged += l =>
            {
                if (l.IsActive)
                {
                    Interlocked.CompareExchange(ref activatedAt[index], Stopwatch.GetTimestamp(), 0);
                }
            };
        }

        var (old, _) = await WaitForOneActiveAsync(group, "electing one of three");
        var oldTerm = old.Leadership.Term;

        // kill -9: renewals stop at once and nothing is revoked; the lease has to run out in etcd.
        await old.AbandonAsync();
        var oldConfirmedUntil = old.Leadership.ConfirmedUntil;
        var rest = group.Where(c => c != old).ToArray();

        var (successor, _) = await WaitForOneActiveAsync(rest, "electing a successor after the active monitor was killed");
        // The view changes before LeadershipChanged is raised, so the poll above can see it first: wait for the event.
        var successorIndex = Array.IndexOf(group, successor);
        await Poll.UntilAsync(
            () => Volatile.Read(ref activatedAt[successorIndex]) != 0,
            Poll.DefaultTimeout,
            "the successor raising LeadershipChanged",
            () => $"expected {Self(successor)} to raise LeadershipChanged with IsActive; its view is {successor.Leadership}",
            Token);
        var successorActivatedAt = Volatile.Read(ref activatedAt[successorIndex]);

        Assert.True(
            successorActivatedAt > oldConfirmedUntil,
            $"the successor became active {Stopwatch.GetElapsedTime(oldConfirmedUntil, successorActivatedAt).TotalMilliseconds:0} ms after the killed monitor's last ConfirmedUntil; expected after it (positive)");
        Assert.True(successor.Leadership.Term > oldTerm, $"the term rises: {oldTerm} then {successor.Leadership.Term}");
        Assert.All(rest, c => Assert.Equal(Self(successor), c.Leadership.Active));

        var current = await successor.LoadAsync(Token);
        var written = await successor.CompareAndSetAsync(current.Version, current with { Version = current.Version + 1 }, Token);
        Assert.True(written.Committed, "the successor can write");
    }

    [Fact]
    public async Task A_deposed_monitor_that_has_not_noticed_is_refused_by_the_transaction_guard()
    {
        var group = await StartGroupAsync(2);
        var (old, _) = await WaitForOneActiveAsync(group, "electing one of two");
        var v1 = ClusterConfig.Initial with { Version = 1, Epoch = 1 };
        Assert.True((await old.CompareAndSetAsync(0, v1, Token)).Committed);

        // Frozen: its view still says active, so only etcd's transaction can stop its write.
        await old.AbandonAsync();
        var successor = group.Single(c => c != old);
        await WaitForOneActiveAsync([successor], "the other monitor taking over from the frozen one");
        Assert.True(old.Leadership.IsActive, "the frozen monitor still believes it is active (the local check passes)");

        var refused = await Assert.ThrowsAsync<NotActiveMonitorException>(
            async () => await old.CompareAndSetAsync(v1.Version, v1 with { Version = 2, Epoch = 2 }, Token));
        Assert.Equal(Self(successor), refused.Active);

        var stored = await successor.LoadAsync(Token);
        Assert.True(stored.SameAs(v1), $"the deposed monitor's write must not commit; stored {stored}");
    }

    [Fact]
    public async Task A_monitor_that_shuts_down_cleanly_hands_over_and_leaves_the_group()
    {
        var group = await StartGroupAsync(2);
        var (old, _) = await WaitForOneActiveAsync(group, "electing one of two");
        var successor = group.Single(c => c != old);

        await old.DisposeAsync();
        _coordinators.Remove(old);

        await WaitForOneActiveAsync([successor], "the remaining monitor taking over after a clean shutdown");
        await Poll.UntilAsync(
            () => successor.Peers.Count == 1,
            Poll.DefaultTimeout,
            "the departed monitor's member key going with its revoked lease",
            () => $"expected only {Self(successor)}; saw {string.Join(",", successor.Peers)}",
            Token);
    }

    [Fact]
    public async Task A_damaged_configuration_key_is_an_error_never_the_initial_configuration()
    {
        var group = await StartGroupAsync(2);
        var (leader, _) = await WaitForOneActiveAsync(group, "electing one of two");
        using (var client = new dotnet_etcd.EtcdClient(etcd.ClientUrl.GetLeftPart(UriPartial.Authority)))
        {
            await client.PutAsync(leader.ConfigKey, "not a configuration", cancellationToken: Token);
        }

        var damaged = await Assert.ThrowsAsync<InvalidDataException>(async () => await leader.LoadAsync(Token));
        Assert.Contains(leader.ConfigKey, damaged.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidDataException>(
            async () => await leader.CompareAndSetAsync(0, ClusterConfig.Initial with { Version = 1 }, Token));

        // The election is unaffected: the group still agrees on one active monitor.
        await WaitForOneActiveAsync(group, "keeping one active monitor while the configuration is damaged");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var c in _coordinators)
        {
            await c.DisposeAsync();
        }
    }

    internal static NodeAddress Self(EtcdCoordinator c) => c.Self;

    internal static async Task<(EtcdCoordinator Leader, EtcdCoordinator[] Followers)> WaitForOneActiveAsync(EtcdCoordinator[] group, string phase)
    {
        await Poll.UntilAsync(
            () =>
            {
                var views = group.Select(c => c.Leadership).ToArray();
                return views.Count(v => v.IsActive) == 1 && views.All(v => v.HasQuorum && v.Active == views.Single(a => a.IsActive).Active && v.Term == views[0].Term);
            },
            Poll.DefaultTimeout,
            phase,
            () => $"expected exactly one active monitor that all agree on; saw {string.Join("; ", group.Select(c => $"{Self(c)}: {c.Leadership}"))}",
            Token);
        var leader = group.Single(c => c.Leadership.IsActive);
        return (leader, group.Where(c => c != leader).ToArray());
    }

    private async Task<EtcdCoordinator[]> StartGroupAsync(int count)
    {
        if (etcd.SkipReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var group = new EtcdCoordinator[count];
        for (var i = 0; i < count; i++)
        {
            group[i] = new EtcdCoordinator(new EtcdCoordinatorOptions
            {
                Endpoints = [etcd.ClientUrl],
                ClusterName = _cluster,
                Self = new NodeAddress("127.0.0.1", 19000 + i),
            });
            _coordinators.Add(group[i]);
        }

        await Task.WhenAll(group.Select(c => c.StartAsync(Token).AsTask()));
        return group;
    }
}

using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Orchestration.Polling;

namespace Understudy.Server.Tests;

/// <summary>
/// Many <see cref="UnderstudyClient"/>s on one <see cref="ClientLoop"/>: each keeps its own calls, cancellations and
/// failovers; one client's cancellation, disposal or failover stalls none of the others.
/// </summary>
public sealed class SharedClientLoopTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static async Task<UnderstudyClient> ConnectAsync(InProcessCluster cluster, ClientLoop loop) =>
        await UnderstudyClient.ConnectAsync(
            new UnderstudyClientOptions
            {
                Monitor = cluster.Monitor.Options.ClientListen,
                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(20) },
                Loop = loop,
            },
            Token);

    [Fact]
    public async Task A_call_cancelled_before_it_was_sent_on_a_shared_loop_is_never_applied_and_the_other_clients_calls_go_on()
    {
        await using var cluster = await InProcessCluster.StartAsync(servers: 0);
        await using var loop = new ClientLoop();
        await using var first = await ConnectAsync(cluster, loop);
        await using var second = await ConnectAsync(cluster, loop);

        // No server yet, so no primary: both calls wait in their clients, unsent; only the first is cancelled.
        using var cancel = new CancellationTokenSource();
        var cancelled = first.ExecuteAsync(Counter.Add(1000), cancel.Token);
        var kept = second.ExecuteAsync(Counter.Add(1), Token);
        await Poll.UntilAsync(() => first.ConnectedMonitor == cluster.Monitor.Options.ClientListen && second.ConnectedMonitor == cluster.Monitor.Options.ClientListen, Poll.DefaultTimeout, "both clients connected", () => $"expected the monitor {cluster.Monitor.Options.ClientListen} for both, saw {first.ConnectedMonitor} and {second.ConnectedMonitor}", Token);
        await cancel.CancelAsync();
        var e = await Assert.ThrowsAsync<UnderstudyCanceledException>(() => cancelled);
        Assert.Equal(OutcomeKind.Failed, e.Outcome);
        Assert.False(kept.IsCompleted, "the second client's call is still waiting for a primary, not cancelled with the first's");

        // A primary appears: the kept call is sent and applied once; the cancelled one never is.
        await cluster.StartServerAsync(0);
        await cluster.WaitForPrimaryAsync("start-up");
        Assert.Equal(1, Counter.Decode((await kept.WaitAsync(Poll.DefaultTimeout, Token)).Payload));
        Assert.Equal(1, Counter.Decode((await first.QueryAsync(Counter.Total(), Token)).Payload));
    }

    [Fact]
    public async Task Clients_on_a_shared_loop_each_follow_a_failover_and_a_disposed_one_stalls_none()
    {
        await using var cluster = await InProcessCluster.StartAsync(servers: 3);
        var primary = await cluster.WaitForPrimaryAsync("start-up");
        await using var loop = new ClientLoop();
        var clients = new List<UnderstudyClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await ConnectAsync(cluster, loop));
            }

            for (var i = 0; i < clients.Count; i++)
            {
                await clients[i].ExecuteAsync(Counter.Add(1), Token);
            }

            // One client leaves the loop: its calls are refused from then on, the others' go on.
            var gone = clients[0];
            await gone.DisposeAsync();
            await Assert.ThrowsAsync<ObjectDisposedException>(() => gone.ExecuteAsync(Counter.Add(1000), Token));
            var live = clients.Skip(1).ToList();
            foreach (var client in live)
            {
                await client.ExecuteAsync(Counter.Add(1), Token);
            }

            // Only an in-sync backup may take over, so the kill waits until both backups are in the set.
            await cluster.WaitForInSyncAsync(primary, 3, "both backups in the in-sync set before the kill");
            await cluster.KillAsync(primary);
            var next = await cluster.WaitForPrimaryAsync("failover", primary);

            // Every remaining client reaches the new primary on its own, all at once on the one loop.
            await Task.WhenAll(live.Select(c => c.ExecuteAsync(Counter.Add(1), Token))).WaitAsync(Poll.DefaultTimeout, Token);
            Assert.All(live, c => Assert.Equal(cluster.ServerAddress(next), c.State.Primary));
            var total = Counter.Decode((await live[0].QueryAsync(Counter.Total(), Token)).Payload);
            Assert.True(total == 4 + 3 + 3, $"every acknowledged add counted once: expected 10, read {total}");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }
}

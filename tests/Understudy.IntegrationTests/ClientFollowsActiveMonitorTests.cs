using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;

namespace Understudy.IntegrationTests;

/// <summary>
/// A client subscribes at the active monitor of a Raft group, wherever its list starts: a follower hears of a
/// promotion only with the leader's next Raft round, so it names the active monitor and the client moves there.
/// </summary>
public sealed class ClientFollowsActiveMonitorTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_client_given_a_follower_first_subscribes_at_the_active_monitor_and_moves_on_when_it_dies()
    {
        await using var group = await RaftMonitorGroup.StartAsync(3);
        var active = await group.WaitForOneActiveAsync("election");
        var followers = group.Running.Where(h => h != active).ToList();
        await using var server = await ServerHost.StartAsync(
            new ServerHostOptions
            {
                Listen = new("127.0.0.1", LocalClusterOptions.FreePorts(1)[0]),
                Monitors = [.. group.Running.Select(h => h.HeartbeatAddress)],
                DataDirectory = Path.Combine(group.Folder, "server"),
                Fsync = Storage.FsyncPolicy.Never,
            },
            NullLoggerFactory.Instance,
            Token);

        // The followers first, the active monitor last: the client starts on a follower.
        await using var client = new UnderstudyClient(new UnderstudyClientOptions
        {
            Monitors = [followers[0].Options.ClientListen, followers[1].Options.ClientListen, active.Options.ClientListen],
        });
        await Poll.UntilAsync(
            () => client.ConnectedMonitor == active.Options.ClientListen,
            Poll.DefaultTimeout,
            "the client moving from the follower it was given first to the active monitor",
            () => $"expected a connection to {active.Options.ClientListen} (active); connected to {client.ConnectedMonitor}",
            Token);
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(Token))
        {
            wait.CancelAfter(Poll.DefaultTimeout);
            await client.WaitForPrimaryAsync(wait.Token);
        }

        Assert.Equal(1, await client.AppendAsync("before", Token));

        // The active monitor dies: the client moves on, and ends up at the newly elected one.
        await group.StopAsync(active);
        var next = await group.WaitForOneActiveAsync("re-election after the active monitor stopped");
        await Poll.UntilAsync(
            () => client.ConnectedMonitor == next.Options.ClientListen,
            Poll.DefaultTimeout,
            "the client subscribing at the newly elected active monitor",
            () => $"expected a connection to {next.Options.ClientListen} (the new active); connected to {client.ConnectedMonitor}",
            Token);
        Assert.Equal(2, await client.AppendAsync("after", Token));
    }
}

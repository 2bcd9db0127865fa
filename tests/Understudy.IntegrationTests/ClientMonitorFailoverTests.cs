using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>
/// A client given several monitors uses any one that answers and moves to another when it fails. In process: three
/// monitors each a group of one (not a real group: each names the one server primary on its own, which is all a
/// client's failover needs) and a server heartbeating all three.
/// </summary>
public sealed class ClientMonitorFailoverTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_monitor_that_takes_connections_but_never_answers_is_passed_over()
    {
        var folder = Directory.CreateTempSubdirectory("understudy-client-frozen-");
        var ports = LocalClusterOptions.FreePorts(3);

        // Listening but never accepting: the kernel completes the connection, as for a SIGSTOPped monitor.
        using var frozen = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        frozen.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        frozen.Listen(16);
        var frozenAddress = new NodeAddress("127.0.0.1", ((System.Net.IPEndPoint)frozen.LocalEndPoint!).Port);
        var monitor = await MonitorHost.StartAsync(
            new MonitorHostOptions
            {
                HeartbeatListen = new NodeAddress("127.0.0.1", ports[0]),
                ClientListen = new NodeAddress("127.0.0.1", ports[1]),
                DataDirectory = Path.Combine(folder.FullName, "monitor"),
                HttpPort = 0,
            },
            NullLoggerFactory.Instance,
            Token);
        try
        {
            await using var server = await ServerHost.StartAsync(
                new ServerHostOptions
                {
                    Listen = new NodeAddress("127.0.0.1", ports[2]),
                    Monitor = monitor.Options.HeartbeatListen,
                    DataDirectory = Path.Combine(folder.FullName, "server"),
                    Fsync = Storage.FsyncPolicy.Never,
                },
                NullLoggerFactory.Instance,
                Token);
            await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [frozenAddress, monitor.Options.ClientListen] });
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(Token))
            {
                wait.CancelAfter(Poll.DefaultTimeout);
                await client.WaitForPrimaryAsync(wait.Token);
            }

            Assert.Equal(monitor.Options.ClientListen, client.ConnectedMonitor);
            Assert.Equal(1, await client.AppendAsync("through the monitor that answers", Token));
        }
        finally
        {
            await monitor.DisposeAsync();
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_client_skips_a_dead_monitor_and_carries_on_through_another_when_the_one_it_uses_dies()
    {
        var folder = Directory.CreateTempSubdirectory("understudy-client-failover-");
        var ports = LocalClusterOptions.FreePorts(8);
        var monitors = new List<MonitorHost>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                monitors.Add(await MonitorHost.StartAsync(
                    new MonitorHostOptions
                    {
                        HeartbeatListen = new NodeAddress("127.0.0.1", ports[2 * i]),
                        ClientListen = new NodeAddress("127.0.0.1", ports[(2 * i) + 1]),
                        DataDirectory = Path.Combine(folder.FullName, $"monitor{i + 1}"),
                        HttpPort = 0,
                    },
                    NullLoggerFactory.Instance,
                    Token));
            }

            await using var server = await ServerHost.StartAsync(
                new ServerHostOptions
                {
                    Listen = new NodeAddress("127.0.0.1", ports[6]),
                    Monitors = [.. monitors.Select(m => m.Options.HeartbeatListen)],
                    DataDirectory = Path.Combine(folder.FullName, "server"),
                    Fsync = Storage.FsyncPolicy.Never,
                },
                NullLoggerFactory.Instance,
                Token);

            // The first address the client is given has nothing behind it: it moves on to a monitor that answers.
            var dead = new NodeAddress("127.0.0.1", ports[7]);
            await using var client = new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitors = [dead, .. monitors.Select(m => m.Options.ClientListen)],
            });
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(Token))
            {
                wait.CancelAfter(Poll.DefaultTimeout);
                await client.WaitForPrimaryAsync(wait.Token);
            }

            Assert.Equal(1, await client.AppendAsync("before", Token));
            var used = client.ConnectedMonitor;
            Assert.NotEqual(dead, used);
            var index = monitors.FindIndex(m => m.Options.ClientListen == used);
            Assert.True(index >= 0, $"the client is connected to {used}, none of the monitors");

            // The monitor it uses dies: it reconnects to another, whose status answers, and writes go on.
            await monitors[index].DisposeAsync();
            monitors.RemoveAt(index);
            await Poll.UntilAsync(
                () => client.ConnectedMonitor is { IsNone: false } now && now != used && now != dead,
                Poll.DefaultTimeout,
                "the client moves to another monitor after the one it used dies",
                () => $"connected to {client.ConnectedMonitor} (was {used})",
                Token);
            var status = await client.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromSeconds(5), Token);
            Assert.True(status.Ok, status.Message);
            Assert.Equal(2, await client.AppendAsync("after", Token));
        }
        finally
        {
            foreach (var m in monitors)
            {
                await m.DisposeAsync();
            }

            folder.Delete(recursive: true);
        }
    }
}

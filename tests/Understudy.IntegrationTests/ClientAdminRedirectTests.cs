using Understudy.Client;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.IntegrationTests;

/// <summary>
/// An operator command reaching a follower monitor is refused with the active monitor's heartbeat address; the client
/// sends it again to that monitor's client address (heartbeat port + 1 by default) and returns its answer.
/// </summary>
public sealed class ClientAdminRedirectTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_command_refused_by_a_follower_is_sent_to_the_active_monitor_it_names()
    {
        var active = ActiveHeartbeatWithFreeClientPort();
        await using var follower = await AdminFake.StartAsync(new NodeAddress("127.0.0.1", 0), r => new AdminResponse(r.RequestId, false, "not the active monitor", ReadOnlyMemory<byte>.Empty) { ActiveMonitor = active });
        await using var leader = await AdminFake.StartAsync(active with { Port = active.Port + 1 }, r => new AdminResponse(r.RequestId, true, "switchover done", ReadOnlyMemory<byte>.Empty));

        // Only the follower is listed: the refusal alone leads the client to the active monitor.
        await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [follower.Address] });
        var answer = await client.AdminAsync(AdminCommand.Switchover, NodeAddress.None, TimeSpan.FromSeconds(10), Token);

        Assert.True(answer.Ok, answer.Message);
        Assert.Equal("switchover done", answer.Message);
        Assert.Equal(1, follower.Requests);
        Assert.Equal(1, leader.Requests);
    }

    [Fact]
    public async Task A_plain_refusal_is_the_answer()
    {
        await using var monitor = await AdminFake.StartAsync(new NodeAddress("127.0.0.1", 0), r => new AdminResponse(r.RequestId, false, "no such member", ReadOnlyMemory<byte>.Empty));
        await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [monitor.Address] });

        var answer = await client.AdminAsync(AdminCommand.Switchover, NodeAddress.None, TimeSpan.FromSeconds(10), Token);

        Assert.False(answer.Ok);
        Assert.Equal("no such member", answer.Message);
        Assert.Equal(1, monitor.Requests);
    }

    /// <summary>A heartbeat address whose port + 1 (the default client port) is free now; the heartbeat port itself is never listened on.</summary>
    private static NodeAddress ActiveHeartbeatWithFreeClientPort()
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = LocalClusterOptions.FreePorts(1)[0];
            if (LocalClusterOptions.PortIsFree(port + 1) || attempt > 100)
            {
                return new NodeAddress("127.0.0.1", port);
            }
        }
    }

    /// <summary>Answers operator requests on a client port as the test says, counting them.</summary>
    private sealed class AdminFake : IAsyncDisposable
    {
        private readonly Func<AdminRequest, AdminResponse> _answer;
        private FrameServer _server = null!;
        private int _requests;

        private AdminFake(Func<AdminRequest, AdminResponse> answer) => _answer = answer;

        public NodeAddress Address => _server.LocalAddress;

        public int Requests => Volatile.Read(ref _requests);

        public static async Task<AdminFake> StartAsync(NodeAddress listen, Func<AdminRequest, AdminResponse> answer)
        {
            var fake = new AdminFake(answer);
            var options = new FrameConnectionOptions { Role = PeerRole.Monitor, LocalAddress = listen, Incarnation = 7, UnauthenticatedRoles = [PeerRole.Client, PeerRole.Admin] };
            fake._server = await FrameServer.StartAsync(new TcpTransport(), listen, options, fake.HandleAsync, _ => { }, TestContext.Current.CancellationToken);
            return fake;
        }

        private ValueTask HandleAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
        {
            if (message is AdminRequest request)
            {
                Interlocked.Increment(ref _requests);
                connection.Send(_answer(request));
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => _server.DisposeAsync();
    }
}

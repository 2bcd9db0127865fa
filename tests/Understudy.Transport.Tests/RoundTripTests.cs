namespace Understudy.Transport.Tests;

public class RoundTripTests
{
    private static readonly NodeAddress A = new("127.0.0.1", 8090);
    private static readonly NodeAddress B = new("127.0.0.1", 8089);

    private static ClusterConfig Config => ClusterConfig.Initial with
    {
        Epoch = 3,
        Version = 9,
        Primary = A,
        InSync = [B, A],
        Members = [new MemberInfo(B, 8089), new MemberInfo(A, 8090)],
    };

    /// <summary>One of every message a connection carries after its handshake.</summary>
    private static IMessage[] Messages =>
    [
        new Heartbeat(A, 42, ServerRole.Primary, 3, 9, 100, 3, 99, 123456, 8090, true, 4242, 8190),
        new HeartbeatAck(Config, 123456, 500, 7),
        new ConfigPush(Config, 1, 500),
        new InSyncChange(5, A, 3, 9, InSyncOp.Remove, B),
        new InSyncChangeResult(5, true, Config, "ok"),
        new StepDown(3, B),
        new StepDownResult(3, A, B, true, 100, string.Empty),
        new Replicate(3, A, 10, 2, 9, 77, new[]
        {
            new LogEntry(11, 3, EntryKind.Command, 99, 1, 1, new byte[] { 1, 2, 3 }, 1_764_650_000_123),
            new LogEntry(12, 3, EntryKind.EpochStart, 0, 0, 0, Array.Empty<byte>(), 1_764_650_000_124),
        }),
        new ReplicateAck(3, B, 11, true, 12, 12, 12, 10, 0, 0, 77),
        new ClientRequest(99, 4, 3, RequestKind.Write, new byte[] { 1, 104, 105 }),
        new ClientResponse(99, 4, ResponseStatus.NotPrimary, 3, A, "not me"u8.ToArray()),
        new PrimaryQuery(99, true),
        new PrimaryUpdate(3, 9, A),
        new AdminRequest(1, AdminCommand.Switchover, B),
        new AdminResponse(1, true, "done", "{}"u8.ToArray()),
    ];

    [Theory]
    [InlineData(TransportKind.Tcp, false)]
    [InlineData(TransportKind.Memory, false)]
    [InlineData(TransportKind.Tcp, true)]
    [InlineData(TransportKind.Memory, true)]
    public async Task Every_message_type_goes_there_and_back_intact(TransportKind kind, bool authenticated)
    {
        var transport = Test.Create(kind);
        var key = authenticated ? "0123456789abcdef0123456789abcdef"u8.ToArray() : null;

        // The server echoes every message back on the connection it came from.
        FrameHandler echo = (connection, message, _) =>
        {
            Assert.True(connection.Send(message));
            return ValueTask.CompletedTask;
        };
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = key }, echo);
        var inbox = new Inbox();
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server, key: key), inbox.Handler, Test.Token).Within();
        Assert.Equal(authenticated, client.IsAuthenticated);
        Assert.Equal(Test.ServerAddress, client.PeerAddress);
        Assert.Equal(PeerRole.Server, client.PeerHello.Role);

        foreach (var message in Messages)
        {
            Assert.True(client.Send(message));
        }

        foreach (var message in Messages)
        {
            var echoed = await inbox.NextAsync();
            Assert.Equal(Test.Hex(message), Test.Hex(echoed));
        }

        Assert.Empty(server.Logger.Warnings);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Many_small_frames_are_batched_and_all_arrive_in_order(TransportKind kind)
    {
        const int count = 20_000;
        var transport = Test.Create(kind);
        var received = 0;
        var outOfOrder = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        FrameHandler check = (_, message, _) =>
        {
            if (((ClientRequest)message).Seq != received + 1)
            {
                outOfOrder++;
            }

            if (++received == count)
            {
                done.SetResult();
            }

            return ValueTask.CompletedTask;
        };
        await using var server = await TestServer.StartAsync(transport, handler: check);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();

        var payload = new byte[32];
        for (var seq = 1; seq <= count; seq++)
        {
            Assert.True(client.Send(new ClientRequest(1, seq, 1, RequestKind.Write, payload)));
        }

        await done.Task.Within();
        Assert.Equal(0, outOfOrder);
        Assert.Equal(count + 2, client.FramesSent); // and the two Hellos

        // Frames queued while a flush is under way share the next one.
        Assert.True(client.Flushes < client.FramesSent / 2, $"{client.Flushes} flushes for {client.FramesSent} frames");
    }

    [Fact]
    public async Task A_frame_over_the_senders_own_limit_is_refused_at_send_time()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client, maxFrameSize: 1024), new Inbox().Handler, Test.Token).Within();
        var e = Assert.Throws<ArgumentException>(() => client.Send(new RawMessage(MessageType.ClientRequest, new byte[2000])));
        Assert.Contains("does not fit", e.Message);
    }
}

namespace Understudy.Transport.Tests;

public class TransportTests
{
    [Fact]
    public async Task Tcp_connect_where_nothing_listens_is_refused()
    {
        var address = await Test.FreeTcpPortAsync();
        var e = await Assert.ThrowsAsync<TransportException>(async () => await new TcpTransport().ConnectAsync(address, Test.Token));
        Assert.Equal(TransportError.Refused, e.Error);
        Assert.Contains(address.ToString(), e.Message);
    }

    [Fact]
    public async Task In_memory_connect_where_nothing_listens_is_refused()
    {
        var transport = new InMemoryTransport();
        var e = await Assert.ThrowsAsync<TransportException>(async () => await transport.ConnectAsync(Test.ServerAddress, Test.Token));
        Assert.Equal(TransportError.Refused, e.Error);

        // Nor after the listener that was there is gone.
        var listener = await transport.ListenAsync(Test.ServerAddress, Test.Token);
        await listener.DisposeAsync();
        e = await Assert.ThrowsAsync<TransportException>(async () => await transport.ConnectAsync(Test.ServerAddress, Test.Token));
        Assert.Equal(TransportError.Refused, e.Error);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Port_in_use_gives_one_readable_line_naming_the_address_and_the_fix(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var first = await transport.ListenAsync(Test.AnyPort, Test.Token);
        var e = await Assert.ThrowsAsync<TransportException>(async () => await transport.ListenAsync(first.LocalAddress, Test.Token));
        Assert.Equal(TransportError.AddressInUse, e.Error);
        Assert.Contains(first.LocalAddress.ToString(), e.Message);
        Assert.Contains("already in use", e.Message);
        Assert.Contains("another port", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task Port_in_use_message_names_the_hosts_own_flag()
    {
        var transport = new TcpTransport("stop it, or pass --port to use another");
        await using var first = await transport.ListenAsync(Test.AnyPort, Test.Token);
        var e = await Assert.ThrowsAsync<TransportException>(async () => await transport.ListenAsync(first.LocalAddress, Test.Token));
        Assert.EndsWith("stop it, or pass --port to use another.", e.Message);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Closing_one_side_is_seen_by_the_other(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport);
        var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();
        await Test.Eventually(() => !server.Accepted.IsEmpty, "the server has the connection");
        var serverSide = Assert.Single(server.Accepted);

        await client.DisposeAsync();
        Assert.Equal(TransportError.LocalClose, (await client.Closed.Within()).Reason);
        Assert.Equal(TransportError.PeerClosed, (await serverSide.Closed.Within()).Reason);
        Assert.False(client.Send(new PrimaryQuery(1, false)));
        await Test.Eventually(() => server.Server.Connections.Count == 0, "the server forgets the connection");
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Server_dispose_closes_its_connections_and_stops_accepting(TransportKind kind)
    {
        var transport = Test.Create(kind);
        var server = await TestServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();
        await server.DisposeAsync().AsTask().Within();
        Assert.Equal(TransportError.PeerClosed, (await client.Closed.Within()).Reason);
        var e = await Assert.ThrowsAsync<TransportException>(async () => await transport.ConnectAsync(server.Address, Test.Token));
        Assert.Equal(TransportError.Refused, e.Error);
    }

    [Fact]
    public async Task A_peer_that_stops_reading_is_cut_when_the_send_queue_passes_its_limit()
    {
        var transport = new TcpTransport();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        FrameHandler stuck = async (_, _, token) => await release.Task.WaitAsync(token);
        await using var server = await TestServer.StartAsync(transport, handler: stuck);
        try
        {
            var log = new TestLogger();
            var options = Test.Options(PeerRole.Server, log, maxFrameSize: 64 * 1024) with { MaxPendingSendBytes = 256 * 1024 };
            await using var client = await FrameConnection.ConnectAsync(transport, server.Address, options, new Inbox().Handler, Test.Token).Within();
            var payload = new byte[1024];

            // Send as a well-behaved producer would: hold back while a lot is pending, and give the writer a
            // chance to drain. Only a peer that reads nothing can push the queue over the limit.
            var sent = 0;
            var start = DateTime.UtcNow;
            while (client.Send(new ClientRequest(1, ++sent, 1, RequestKind.Write, payload)))
            {
                Assert.True(DateTime.UtcNow - start < Test.Deadline, "the queue never filled");
                if (client.PendingSendBytes > 128 * 1024)
                {
                    await Task.Delay(1, Test.Token);
                }
            }

            var closed = await client.Closed.Within();
            Assert.Equal(TransportError.SendQueueFull, closed.Reason);
            Assert.Contains("stopped reading", closed.Detail);
            Assert.Contains(log.Warnings, w => w.Contains("stopped reading"));
        }
        finally
        {
            release.SetResult();
        }
    }
}

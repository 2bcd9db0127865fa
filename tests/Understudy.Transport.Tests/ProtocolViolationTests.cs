namespace Understudy.Transport.Tests;

/// <summary>Whatever a peer sends, the server answers with a ProtocolError, closes that one connection, logs one line, and serves the next client.</summary>
public class ProtocolViolationTests
{
    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Frame_over_the_limit_gets_a_protocol_error_and_a_close_and_the_server_serves_the_next_client(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport, o => o with { MaxFrameSize = 1024 });
        var clientLog = new TestLogger();
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client, clientLog), new Inbox().Handler, Test.Token).Within();

        Assert.True(client.Send(new RawMessage(MessageType.ClientRequest, new byte[100_000])));

        var closed = await client.Closed.Within();
        Assert.Equal(TransportError.RejectedByPeer, closed.Reason);
        Assert.Contains("FrameTooLarge", closed.Detail);
        Assert.Contains("over the limit of 1024", closed.Detail);
        await AssertOneWarningAsync(server, "over the limit of 1024");
        await AssertStillServesAsync(transport, server);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Garbage_bytes_get_a_protocol_error_and_a_close_and_the_server_serves_the_next_client(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport);
        await using (var raw = await RawPeer.ConnectAsync(transport, server.Address))
        {
            // Read as a length prefix, "Garb" announces a frame of 1.6 GB.
            await raw.SendAsync("Garbage, not a frame at all"u8.ToArray());
            var frames = await raw.ReadToEndAsync();
            Assert.Equal(MessageType.Hello, frames[0].Type);
            var error = Assert.Single(frames, f => f.Type == MessageType.ProtocolError);
            var parsed = ProtocolError.Parse(error.Body);
            Assert.Equal(ProtocolErrorCode.FrameTooLarge, parsed.Code);
        }

        await AssertOneWarningAsync(server, "over the limit");
        await AssertStillServesAsync(transport, server);
    }

    [Fact]
    public async Task Http_request_on_the_protocol_port_is_told_which_port_it_reached()
    {
        var transport = new TcpTransport();
        await using var server = await TestServer.StartAsync(transport);
        await using var raw = await RawPeer.ConnectAsync(transport, server.Address);
        await raw.SendAsync("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        var frames = await raw.ReadToEndAsync();
        var error = ProtocolError.Parse(Assert.Single(frames, f => f.Type == MessageType.ProtocolError).Body);
        Assert.Contains("HTTP", error.Message);
        await AssertOneWarningAsync(server, "HTTP request");
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Unknown_message_type_gets_a_protocol_error_and_a_close_and_the_server_serves_the_next_client(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();

        Assert.True(client.Send(new RawMessage((MessageType)200, [1, 2, 3])));

        var closed = await client.Closed.Within();
        Assert.Equal(TransportError.RejectedByPeer, closed.Reason);
        Assert.Contains("unknown message type 200", closed.Detail);
        await AssertOneWarningAsync(server, "unknown message type 200");
        await AssertStillServesAsync(transport, server);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Malformed_body_gets_a_protocol_error_naming_the_field(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();

        // A ClientRequest three bytes long: its first field alone needs eight.
        Assert.True(client.Send(new RawMessage(MessageType.ClientRequest, [1, 2, 3])));

        var closed = await client.Closed.Within();
        Assert.Equal(TransportError.RejectedByPeer, closed.Reason);
        Assert.Contains("clientId", closed.Detail);
        await AssertStillServesAsync(transport, server);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Truncated_frame_then_close_ends_that_connection_without_a_crash(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport);
        await using (var raw = await RawPeer.ConnectAsync(transport, server.Address))
        {
            // Hello, then the same Hello again to accept the server's: the handshake is done.
            var hello = new Hello(PeerRole.Client, NodeAddress.None, 1, 42, false);
            await raw.SendAsync(hello);
            await raw.SendAsync(hello);
            var frame = MessageCodec.ToFrame(new ClientRequest(1, 1, 1, RequestKind.Write, new byte[100]));
            await raw.SendAsync(frame[..(frame.Length / 2)]);
            await raw.CloseOutputAsync();
            await Test.Eventually(() => server.Logger.Lines.Any(l => l.Text.Contains("middle of a frame")), "the server logs the truncated frame");
        }

        await AssertStillServesAsync(transport, server);
    }

    [Fact]
    public async Task First_frame_that_is_not_a_hello_is_refused()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport);
        await using var raw = await RawPeer.ConnectAsync(transport, server.Address);
        await raw.SendAsync(new PrimaryQuery(1, true));
        var frames = await raw.ReadToEndAsync();
        var error = ProtocolError.Parse(Assert.Single(frames, f => f.Type == MessageType.ProtocolError).Body);
        Assert.Equal(ProtocolErrorCode.UnexpectedMessage, error.Code);
        Assert.Contains("must be a Hello", error.Message);
    }

    [Fact]
    public async Task Wrong_protocol_version_is_refused_as_a_version_mismatch()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport);
        await using var raw = await RawPeer.ConnectAsync(transport, server.Address);
        var hello = MessageCodec.ToFrame(new Hello(PeerRole.Client, NodeAddress.None, 1, 42, false));
        hello[MessageCodec.HeaderSize] = 99;
        await raw.SendAsync(hello);
        var frames = await raw.ReadToEndAsync();
        var error = ProtocolError.Parse(Assert.Single(frames, f => f.Type == MessageType.ProtocolError).Body);
        Assert.Equal(ProtocolErrorCode.VersionMismatch, error.Code);
        Assert.Contains("same Understudy version", error.Message);
    }

    [Fact]
    public async Task A_silent_peer_is_cut_after_the_handshake_timeout()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { HandshakeTimeout = TimeSpan.FromMilliseconds(200) });
        await using var raw = await RawPeer.ConnectAsync(transport, server.Address);
        var frames = await raw.ReadToEndAsync();
        Assert.Equal(MessageType.Hello, Assert.Single(frames).Type);
        await AssertOneWarningAsync(server, "no Hello within");
    }

    [Fact]
    public async Task A_handler_that_throws_closes_only_its_connection()
    {
        var transport = new InMemoryTransport();
        FrameHandler failing = (_, message, _) => message is PrimaryQuery ? throw new InvalidOperationException("bug in the host") : ValueTask.CompletedTask;
        await using var server = await TestServer.StartAsync(transport, handler: failing);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();
        Assert.True(client.Send(new PrimaryQuery(1, false)));
        Assert.Equal(TransportError.PeerClosed, (await client.Closed.Within()).Reason);
        var serverSide = Assert.Single(server.Accepted);
        var closed = await serverSide.Closed.Within();
        Assert.Equal(TransportError.HandlerFailed, closed.Reason);
        Assert.Contains("bug in the host", closed.Detail);

        await using var second = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();
        Assert.True(second.Send(new PrimaryUpdate(1, 1, NodeAddress.None)));
        await Test.Eventually(() => server.Accepted.Count == 2 && server.Accepted.Last().FramesReceived == 1, "the second client is served");
    }

    /// <summary>Exactly one warning, which names the peer and the problem.</summary>
    private static async Task AssertOneWarningAsync(TestServer server, string problem)
    {
        await Test.Eventually(() => server.Logger.Warnings.Any(), "the server logs the violation");
        var line = Assert.Single(server.Logger.Warnings);
        Assert.Contains(problem, line);
        Assert.Contains("Connection", line);
        Assert.DoesNotContain('\n', line);
    }

    /// <summary>A well-behaved client still gets through after a bad one.</summary>
    private static async Task AssertStillServesAsync(ITransport transport, TestServer server)
    {
        var inbox = new Inbox();
        await using var good = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), inbox.Handler, Test.Token).Within();
        Assert.True(good.Send(new PrimaryQuery(5, true)));
        var (connection, message) = await server.Inbox.NextWithConnectionAsync();
        Assert.Equal(new PrimaryQuery(5, true), message);
        Assert.True(connection.Send(new PrimaryUpdate(2, 3, Test.ServerAddress)));
        Assert.Equal(new PrimaryUpdate(2, 3, Test.ServerAddress), await inbox.NextAsync());
    }
}

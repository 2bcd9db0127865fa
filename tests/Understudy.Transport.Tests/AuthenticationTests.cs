namespace Understudy.Transport.Tests;

public class AuthenticationTests
{
    private static readonly byte[] Key = "the cluster key, 32 bytes long.."u8.ToArray();
    private static readonly byte[] OtherKey = "another key that is not the same"u8.ToArray();

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Matching_keys_authenticate_and_deliver(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = Key });
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server, key: Key), new Inbox().Handler, Test.Token).Within();
        Assert.True(client.IsAuthenticated);
        Assert.True(client.Send(new StepDown(4, Test.ServerAddress)));
        var (connection, message) = await server.Inbox.NextWithConnectionAsync();
        Assert.True(connection.IsAuthenticated);
        Assert.Equal(new StepDown(4, Test.ServerAddress), message);
    }

    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Wrong_key_is_refused_during_the_handshake(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = Key });
        var e = await Assert.ThrowsAsync<TransportException>(async () =>
            await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server, key: OtherKey), new Inbox().Handler, Test.Token).Within());
        Assert.Equal(TransportError.AuthenticationFailed, e.Error);
        Assert.Contains("MAC", e.Message);
        await Test.Eventually(() => server.Logger.Warnings.Any(w => w.Contains("wrong MAC")), "the server logs the bad MAC");
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public async Task Unauthenticated_peer_is_refused_when_a_key_is_set()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = Key });
        var e = await Assert.ThrowsAsync<TransportException>(async () =>
            await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server), new Inbox().Handler, Test.Token).Within());
        Assert.Equal(TransportError.AuthenticationFailed, e.Error);
        Assert.Contains("cluster key", e.Message);
        await Test.Eventually(() => server.Logger.Warnings.Any(w => w.Contains("did not authenticate")), "the server logs the refusal");
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public async Task Keyed_client_refuses_a_server_that_does_not_authenticate()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport);
        var e = await Assert.ThrowsAsync<TransportException>(async () =>
            await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server, key: Key), new Inbox().Handler, Test.Token).Within());
        Assert.Equal(TransportError.AuthenticationFailed, e.Error);
    }

    [Fact]
    public async Task Roles_let_in_without_the_key_are_served_unauthenticated()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = Key, UnauthenticatedRoles = [PeerRole.Client] });
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();
        Assert.False(client.IsAuthenticated);
        Assert.True(client.Send(new PrimaryQuery(1, true)));
        var (connection, _) = await server.Inbox.NextWithConnectionAsync();
        Assert.False(connection.IsAuthenticated);

        // A member claiming to be a server still needs the key.
        await Assert.ThrowsAsync<TransportException>(async () =>
            await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server), new Inbox().Handler, Test.Token).Within());
    }

    [Fact]
    public async Task Replayed_frame_with_the_same_counter_is_refused()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = Key });
        await using var raw = await RawPeer.ConnectAsync(transport, server.Address);
        using var signer = await HandshakeByHandAsync(raw);

        var heartbeat = signer.Seal(new Heartbeat(Test.ServerAddress, 1, ServerRole.Primary, 1, 1, 1, 1, 1, 1, 1, true, 1, 1));
        await raw.SendAsync(heartbeat);
        Assert.IsType<Heartbeat>(await server.Inbox.NextAsync());

        await raw.SendAsync(heartbeat);
        var error = await ReadProtocolErrorAsync(raw);
        Assert.Equal(ProtocolErrorCode.AuthenticationFailed, error.Code);
        Assert.Contains("replayed", error.Message);
        Assert.Contains(server.Logger.Warnings, w => w.Contains("replayed"));
    }

    [Fact]
    public async Task Frame_recorded_on_one_connection_is_refused_on_another()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = Key });
        byte[] recorded;
        await using (var first = await RawPeer.ConnectAsync(transport, server.Address))
        {
            using var signer = await HandshakeByHandAsync(first);
            recorded = signer.Seal(new StepDown(9, Test.ServerAddress));
            await first.SendAsync(recorded);
            Assert.IsType<StepDown>(await server.Inbox.NextAsync());
        }

        await using var second = await RawPeer.ConnectAsync(transport, server.Address);
        using (await HandshakeByHandAsync(second))
        {
            // Counter 2 follows the signed Hello, so only the nonce is wrong.
            await second.SendAsync(recorded);
            var error = await ReadProtocolErrorAsync(second);
            Assert.Equal(ProtocolErrorCode.AuthenticationFailed, error.Code);
            Assert.Contains("wrong MAC", error.Message);
        }
    }

    [Fact]
    public void Keys_shorter_than_sixteen_bytes_are_refused()
    {
        var options = Test.Options(PeerRole.Server, key: "short"u8.ToArray());
        var e = Assert.Throws<ArgumentException>(() => new ReconnectingPeer(new InMemoryTransport(), Test.ServerAddress, options, new Inbox().Handler));
        Assert.Contains("at least 16", e.Message);
    }

    /// <summary>Does the client half of an authenticated handshake by hand; returns the signer for further frames.</summary>
    private static async Task<FrameAuthenticator> HandshakeByHandAsync(RawPeer raw)
    {
        var hello = new Hello(PeerRole.Server, Test.ServerAddress, 3, 0x1234, true);
        await raw.SendAsync(hello);
        var serverHello = Hello.Parse((await raw.ReadFrameAsync())!.Value.Body);
        var signer = new FrameAuthenticator(Key, serverHello.Nonce, hello.From);
        await raw.SendAsync(signer.Seal(hello));
        var proof = await raw.ReadFrameAsync();
        Assert.Equal(MessageType.Hello, proof!.Value.Type);
        return signer;
    }

    private static async Task<ProtocolError> ReadProtocolErrorAsync(RawPeer raw)
    {
        var frames = await raw.ReadToEndAsync();
        return ProtocolError.Parse(Assert.Single(frames, f => f.Type == MessageType.ProtocolError).Body);
    }
}

namespace Understudy.Transport.Tests;

/// <summary>
/// One cluster runs one state machine: two servers that say different ones in their Hello refuse each other during
/// the handshake, with an error naming both, before anything is replicated. Peers that do not say are not judged.
/// </summary>
public class StateMachineHandshakeTests
{
    [Theory]
    [InlineData(TransportKind.Tcp)]
    [InlineData(TransportKind.Memory)]
    public async Task Servers_running_different_state_machines_refuse_each_other_with_a_clear_error(TransportKind kind)
    {
        var transport = Test.Create(kind);
        await using var server = await TestServer.StartAsync(transport, o => o with { StateMachine = "kv" });

        var e = await Assert.ThrowsAsync<TransportException>(async () =>
            await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server) with { StateMachine = "messages" }, new Inbox().Handler, Test.Token).Within());

        // Each side checks the other's Hello: whichever reads it first refuses, so either error may come back.
        Assert.True(e.Error is TransportError.RejectedByPeer or TransportError.ProtocolViolation, $"expected a refusal, got {e.Error}: {e.Message}");
        Assert.Contains("'messages'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'kv'", e.Message, StringComparison.Ordinal);
        Assert.Contains("--state-machine", e.Message, StringComparison.Ordinal);
        await Test.Eventually(() => server.Logger.Warnings.Any(w => w.Contains("--state-machine", StringComparison.Ordinal)), "the refusing server logs why");
        Assert.Empty(server.Accepted);
    }

    [Fact]
    public async Task Servers_running_the_same_state_machine_connect()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { StateMachine = "kv" });

        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server) with { StateMachine = "kv" }, new Inbox().Handler, Test.Token).Within();

        Assert.Equal("kv", client.PeerHello.StateMachine);
    }

    [Fact]
    public async Task Monitors_and_clients_say_no_state_machine_and_are_not_judged()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, o => o with { StateMachine = "kv" });

        await using var monitor = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Monitor), new Inbox().Handler, Test.Token).Within();
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Client), new Inbox().Handler, Test.Token).Within();

        Assert.Equal("kv", monitor.PeerHello.StateMachine);
    }

    [Fact]
    public void A_Hello_without_the_state_machine_field_still_parses()
    {
        var hello = new Hello(PeerRole.Server, Test.ServerAddress, 7, 9, false);
        var bytes = new byte[hello.Size];
        hello.Format(bytes);

        // The layout before the field: everything but its trailing (empty) string, two bytes of length.
        var parsed = Hello.Parse(bytes.AsSpan(0, bytes.Length - 2));

        Assert.Equal(hello, parsed);
        Assert.Equal(hello with { StateMachine = "kv" }, RoundTrip(hello with { StateMachine = "kv" }));
    }

    private static Hello RoundTrip(Hello hello)
    {
        var bytes = new byte[hello.Size];
        hello.Format(bytes);
        return Hello.Parse(bytes);
    }
}

using System.Collections.Concurrent;

namespace Understudy.Transport.Tests;

public class ReconnectingPeerTests
{
    [Fact]
    public async Task Reconnects_after_the_server_restarts_on_the_same_port_and_reports_each_change()
    {
        var transport = new TcpTransport();
        var address = await Test.FreeTcpPortAsync();
        var events = new ConcurrentQueue<string>();
        var log = new TestLogger();

        var server = await TestServer.StartAsync(transport, address: address);
        await using var peer = new ReconnectingPeer(transport, address, Test.Options(PeerRole.Server, log), new Inbox().Handler, Test.FastReconnect());
        peer.Connected += c => events.Enqueue("connected");
        peer.Disconnected += c => events.Enqueue($"disconnected {c.Reason}");
        peer.Start();

        await Test.Eventually(() => peer.IsConnected, "the peer connects");
        Assert.True(peer.Send(new PrimaryQuery(1, false)));
        Assert.Equal(new PrimaryQuery(1, false), await server.Inbox.NextAsync());

        // The server goes away: the peer says so, and sends are dropped.
        await server.DisposeAsync();
        await Test.Eventually(() => events.Contains("disconnected PeerClosed"), "the peer reports the lost connection");
        await Test.Eventually(() => events.Contains("disconnected Refused"), "the peer reports that the port refuses");
        Assert.False(peer.Send(new PrimaryQuery(2, false)));

        // The server comes back on the same port: the peer finds it again.
        await using var restarted = await TestServer.StartAsync(transport, address: address);
        await Test.Eventually(() => peer.IsConnected, "the peer reconnects");
        Assert.True(peer.Send(new PrimaryQuery(3, false)));
        Assert.Equal(new PrimaryQuery(3, false), await restarted.Inbox.NextAsync());
        Assert.Equal(["connected", "disconnected PeerClosed", "disconnected Refused", "connected"], events.ToArray());

        // One log line per change, not one per failed retry.
        Assert.Single(log.Lines, l => l.Text.StartsWith("Waiting for", StringComparison.Ordinal));
        Assert.Single(log.Lines, l => l.Text.StartsWith("Lost the connection", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Reports_refused_while_nothing_listens_and_drops_sends()
    {
        var transport = new InMemoryTransport();
        var disconnected = new TaskCompletionSource<ConnectionClosed>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var peer = new ReconnectingPeer(transport, Test.ServerAddress, Test.Options(PeerRole.Server), new Inbox().Handler, Test.FastReconnect());
        peer.Disconnected += c => disconnected.TrySetResult(c);
        peer.Start();
        var closed = await disconnected.Task.Within();
        Assert.Equal(TransportError.Refused, closed.Reason);
        Assert.False(peer.IsConnected);
        Assert.False(peer.Send(new PrimaryQuery(1, false)));
    }

    [Fact]
    public async Task Dispose_stops_it_promptly_even_during_a_long_backoff()
    {
        var transport = new InMemoryTransport();
        var slow = new ReconnectOptions { InitialBackoff = TimeSpan.FromMinutes(10), MaxBackoff = TimeSpan.FromMinutes(10), Random = new Random(1) };
        var disconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var peer = new ReconnectingPeer(transport, Test.ServerAddress, Test.Options(PeerRole.Server), new Inbox().Handler, slow);
        peer.Disconnected += _ => disconnected.TrySetResult();
        peer.Start();
        await disconnected.Task.Within();
        var started = DateTime.UtcNow;
        await peer.DisposeAsync().AsTask().Within();
        // Promptly means long before the 10-minute backoff ends; the bound leaves a loaded machine room.
        var took = DateTime.UtcNow - started;
        Assert.True(took < TimeSpan.FromSeconds(30), $"dispose took {took.TotalSeconds:0.0} s during a 10-minute backoff");
    }

    [Fact]
    public async Task Dispose_closes_the_live_connection()
    {
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport);
        var peer = new ReconnectingPeer(transport, server.Address, Test.Options(PeerRole.Server), new Inbox().Handler, Test.FastReconnect());
        peer.Start();
        await Test.Eventually(() => peer.IsConnected, "the peer connects");
        await Test.Eventually(() => !server.Accepted.IsEmpty, "the server has the connection");
        await peer.DisposeAsync().AsTask().Within();
        Assert.Equal(TransportError.PeerClosed, (await Assert.Single(server.Accepted).Closed.Within()).Reason);
    }
}

namespace Understudy.Transport.Tests;

/// <summary>
/// <see cref="FrameConnection.SendNow{T}"/> writes on the caller's thread only when nothing else is queued or being
/// written, and otherwise hands the frame to the writer task: either way the peer reads every frame in the order
/// it was sent, and the caller never waits for a peer that has stopped reading.
/// </summary>
public class SendNowTests
{
    [Theory]
    [InlineData(TransportKind.Tcp, false)]
    [InlineData(TransportKind.Tcp, true)]
    [InlineData(TransportKind.Memory, false)]
    public async Task Frames_sent_now_and_queued_arrive_in_the_order_they_were_sent(TransportKind kind, bool authenticated)
    {
        var transport = Test.Create(kind);
        var key = authenticated ? "0123456789abcdef0123456789abcdef"u8.ToArray() : null;
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = key });
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server, key: key), new Inbox().Handler, Test.Token).Within();

        // Groups of ten: a small frame once the writer is idle (sent at once), a big queued one that keeps the writer
        // busy, then small ones sent now, which must go behind the big one and never overtake it.
        const int Count = 400;
        var big = new byte[48 * 1024];
        for (var i = 0; i < Count; i++)
        {
            if (i % 10 == 0)
            {
                await Test.Eventually(() => client.PendingSendBytes == 0, $"the writer idle before frame {i + 1}");
            }

            var request = new ClientRequest(7, i + 1, 1, RequestKind.Write, i % 10 == 1 ? big : new byte[] { (byte)i });
            Assert.True(i % 10 == 1 ? client.Send(request) : client.SendNow(request), $"frame {i + 1} was refused");
        }

        for (var i = 0; i < Count; i++)
        {
            var received = Assert.IsType<ClientRequest>(await server.Inbox.NextAsync());
            Assert.True(received.Seq == i + 1, $"frame {i + 1} of {Count} expected next, but frame {received.Seq} arrived");
        }

        if (kind == TransportKind.Tcp)
        {
            // At least the first of each group went at once; the big ones never do.
            Assert.InRange(client.FramesSentNow, Count / 10, Count - Count / 10);
        }

        Assert.Empty(server.Logger.Warnings);
    }

    [Fact]
    public async Task A_peer_that_stops_reading_sends_the_rest_through_the_writer_without_blocking_the_caller()
    {
        var transport = new TcpTransport();

        // The server takes the first frame and then stops reading until released: the client's socket buffer fills.
        await using var server = await StalledServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server), new Inbox().Handler, Test.Token).Within();

        // 16 MB: more than loopback's socket buffers hold, less than the send queue's limit. Every call returns at once.
        const int Count = 256;
        var payload = new byte[64 * 1024];
        var started = DateTime.UtcNow;
        for (var i = 0; i < Count; i++)
        {
            Assert.True(client.SendNow(new ClientRequest(7, i + 1, 1, RequestKind.Write, payload)), $"frame {i + 1} was refused");
        }

        var took = DateTime.UtcNow - started;
        Assert.True(took < Test.Deadline, $"sending {Count} frames to a peer that stopped reading should not wait for it, but took {took.TotalSeconds:0.0} s");
        await Test.Eventually(() => client.PendingSendBytes > 0, "frames waiting for the writer while the peer does not read");
        Assert.True(client.FramesSentNow < Count, $"expected some of the {Count} frames to go through the writer, but all were sent at once");

        server.Release();
        for (var i = 0; i < Count; i++)
        {
            var received = Assert.IsType<ClientRequest>(await server.Inbox.NextAsync());
            Assert.True(received.Seq == i + 1, $"after the peer read again: frame {i + 1} of {Count} expected next, but frame {received.Seq} arrived");
        }

        await Test.Eventually(() => client.PendingSendBytes == 0, "the send queue drained once the peer read again");
    }
}

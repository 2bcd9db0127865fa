namespace Understudy.Transport.Tests;

/// <summary>
/// <see cref="FrameConnection.SendHeld{T}"/> keeps frames until <see cref="FrameConnection.FlushHeld"/> writes them with
/// one system call, and whatever else happens on the connection meanwhile (another send, a close) puts them on the wire
/// first: the peer reads every frame, in the order it was sent. <see cref="FrameConnectionOptions.AfterReadBatch"/> comes
/// once per read, after the handler has had every frame of it.
/// </summary>
public class SendHeldTests
{
    private static ClientRequest Request(long seq) => new(7, seq, 1, RequestKind.Write, new byte[] { (byte)seq });

    /// <summary>The next <paramref name="count"/> frames are requests 1, 2, ... <paramref name="count"/>, in that order.</summary>
    private static async Task ExpectInOrderAsync(Inbox inbox, int count, string when)
    {
        for (var i = 1; i <= count; i++)
        {
            var received = Assert.IsType<ClientRequest>(await inbox.NextAsync());
            Assert.True(received.Seq == i, $"{when}: frame {i} of {count} expected next, but frame {received.Seq} arrived");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Held_frames_wait_for_the_flush_and_then_go_in_one_write_in_order(bool authenticated)
    {
        var transport = new TcpTransport();
        var key = authenticated ? "0123456789abcdef0123456789abcdef"u8.ToArray() : null;
        await using var server = await TestServer.StartAsync(transport, o => o with { ClusterKey = key });
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server, key: key), new Inbox().Handler, Test.Token).Within();
        await Test.Eventually(() => client.PendingSendBytes == 0, "the handshake's frames written");
        var sentNow = client.FramesSentNow;
        var writerFlushes = client.Flushes;

        for (var i = 1; i <= 5; i++)
        {
            Assert.True(client.SendHeld(Request(i), out var mustFlush), $"frame {i} was refused");
            Assert.True(mustFlush == (i == 1), $"only the first held frame asks for a flush, but frame {i} said {mustFlush}");
        }

        // Nothing was written: no write of its own, none by the writer task.
        Assert.Equal(0, client.HeldFlushes);
        Assert.Equal(sentNow, client.FramesSentNow);
        Assert.Equal(writerFlushes, client.Flushes);

        client.FlushHeld();
        Assert.Equal(1, client.HeldFlushes);
        await ExpectInOrderAsync(server.Inbox, 5, "after the flush");

        // All five went in the flush's one write, none through the writer task; a second flush has nothing to do.
        Assert.Equal(writerFlushes, client.Flushes);
        client.FlushHeld();
        Assert.Equal(1, client.HeldFlushes);
        Assert.Empty(server.Logger.Warnings);
    }

    [Theory]
    [InlineData("send")]
    [InlineData("send now")]
    [InlineData("close")]
    public async Task A_frame_sent_after_held_frames_never_overtakes_them(string then)
    {
        var transport = new TcpTransport();
        await using var server = await TestServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server), new Inbox().Handler, Test.Token).Within();
        await Test.Eventually(() => client.PendingSendBytes == 0, "the handshake's frames written");

        Assert.True(client.SendHeld(Request(1), out _));
        Assert.True(client.SendHeld(Request(2), out _));
        switch (then)
        {
            case "send":
                Assert.True(client.Send(Request(3)));
                break;
            case "send now":
                Assert.True(client.SendNow(Request(3)));
                break;
            default:
                await client.DisposeAsync();
                break;
        }

        // No flush: the held frames went ahead of the later frame (or of the end of the stream) by themselves.
        await ExpectInOrderAsync(server.Inbox, then == "close" ? 2 : 3, $"after '{then}'");

        Assert.Equal(0, client.HeldFlushes);
    }

    [Fact]
    public async Task A_frame_held_while_the_writer_is_busy_goes_behind_the_writers_queue_without_a_flush()
    {
        var transport = new TcpTransport();

        // The server takes the first frame and then stops reading: the client's big frames back up in its writer.
        await using var server = await StalledServer.StartAsync(transport);
        await using var client = await FrameConnection.ConnectAsync(transport, server.Address, Test.Options(PeerRole.Server), new Inbox().Handler, Test.Token).Within();
        var payload = new byte[64 * 1024];
        const int Big = 128;
        for (var i = 1; i <= Big; i++)
        {
            Assert.True(client.Send(new ClientRequest(7, i, 1, RequestKind.Write, payload)));
        }

        await Test.Eventually(() => client.PendingSendBytes > 0, "frames waiting for the writer while the peer does not read");
        Assert.True(client.SendHeld(Request(Big + 1), out var mustFlush));
        Assert.False(mustFlush, "a frame queued behind a busy writer needs no flush");

        server.Release();
        await ExpectInOrderAsync(server.Inbox, Big + 1, "after the peer read again");

        Assert.Equal(0, client.HeldFlushes);
    }

    [Fact]
    public async Task After_read_batch_comes_once_per_read_after_every_frame_of_it()
    {
        var transport = new TcpTransport();
        var handled = 0;
        var batches = new System.Collections.Concurrent.ConcurrentQueue<int>();
        FrameHandler count = (_, _, _) =>
        {
            Interlocked.Increment(ref handled);
            return ValueTask.CompletedTask;
        };
        await using var server = await TestServer.StartAsync(transport, o => o with { AfterReadBatch = _ => batches.Enqueue(Volatile.Read(ref handled)) }, handler: count);
        await using var raw = await RawPeer.ConnectAsync(transport, server.Address);
        var hello = new Hello(PeerRole.Client, NodeAddress.None, 1, 42, false);
        await raw.SendAsync(hello);
        await raw.SendAsync(hello);

        // Three frames in one write arrive in one read: the handler has all three before the batch ends.
        var three = MessageCodec.ToFrame(Request(1)).Concat(MessageCodec.ToFrame(Request(2))).Concat(MessageCodec.ToFrame(Request(3))).ToArray();
        await raw.SendAsync(three);
        await Test.Eventually(() => batches.Contains(3), $"a batch ending after the three frames of one write (batches ended after {string.Join(", ", batches)} frames)");
        Assert.DoesNotContain(1, batches);
        Assert.DoesNotContain(2, batches);
    }
}

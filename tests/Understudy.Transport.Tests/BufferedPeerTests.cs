namespace Understudy.Transport.Tests;

public class BufferedPeerTests
{
    [Fact]
    public async Task A_message_buffered_while_connecting_goes_out_as_it_was_sent_though_the_sender_reused_its_memory()
    {
        // A primary reads each catch-up frame into one buffer that the next read overwrites: a frame waiting for the
        // connection must be a copy, or the backup would get the next frame's bytes under this frame's header.
        var transport = new InMemoryTransport();
        await using var server = await TestServer.StartAsync(transport, address: Test.ServerAddress);
        var entries = Enumerable.Range(0, 40)
            .Select(i => new LogEntry(11 + i, 3, EntryKind.Command, 99, i, i, Enumerable.Range(0, 50).Select(b => (byte)(b + i)).ToArray(), 1_764_650_000_000 + i))
            .ToArray();
        var encoded = EncodedEntries.Of(entries);
        var reused = new byte[encoded.Bytes.Length];
        encoded.Bytes.Span.CopyTo(reused);
        var frame = new Replicate(3, new NodeAddress("127.0.0.1", 8089), 10, 3, 50, 0, new EncodedEntries(entries.Length, reused));

        await using var peer = new BufferedPeer(transport, Test.ServerAddress, Test.Options(PeerRole.Server), new Inbox().Handler, Test.FastReconnect());
        peer.Send(frame); // before Start: nothing is connected, so it waits in the peer's buffer
        reused.AsSpan().Fill(0xEE);
        peer.Start();

        var received = Assert.IsType<Replicate>(await server.Inbox.NextAsync());
        Assert.Equal(entries, received.Entries.ToArray(), (a, b) => a.Index == b.Index && a.RequestSeq == b.RequestSeq && a.Command.Span.SequenceEqual(b.Command.Span));
    }
}

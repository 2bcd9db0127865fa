namespace Understudy.Protocol.Tests;

/// <summary>
/// A <see cref="Replicate"/> frame whose entries are already encoded (a backlog the primary copies out of its segment
/// files) is the same bytes on the wire as the one built from decoded entries, and reads back as entries.
/// </summary>
public class EncodedEntriesTests
{
    private static readonly NodeAddress A = new("127.0.0.1", 8090);

    private static LogEntry[] Sample() =>
        [.. Enumerable.Range(0, 300).Select(i => new LogEntry(101 + i, 4, i == 0 ? EntryKind.EpochStart : EntryKind.Command, 7, i, i, Enumerable.Range(0, i % 70).Select(b => (byte)(b + i)).ToArray(), 1_764_650_000_000 + i))];

    [Fact]
    public void An_encoded_frame_is_the_same_bytes_as_the_decoded_one_and_reads_back_as_its_entries()
    {
        var entries = Sample();
        var decoded = new Replicate(4, A, 100, 3, 90, 5, entries);
        var encoded = new Replicate(4, A, 100, 3, 90, 5, EncodedEntries.Of(entries));

        Assert.Equal(decoded.Size, encoded.Size);
        Assert.Equal(decoded.LastIndex, encoded.LastIndex);
        Assert.Equal(entries.Length, encoded.EntryCount);
        Assert.Equal(Convert.ToHexString(MessageCodec.ToFrame(decoded)), Convert.ToHexString(MessageCodec.ToFrame(encoded)));

        var read = (Replicate)MessageCodec.Decode(MessageType.Replicate, MessageCodec.ToFrame(encoded).AsSpan(MessageCodec.HeaderSize));
        Assert.Equal(0, read.Encoded.Count);
        Assert.Equal(entries.Select(e => e.ToString()), read.Entries.ToArray().Select(e => e.ToString()));
        Assert.Equal(Convert.ToHexString(MessageCodec.ToFrame(decoded)), Convert.ToHexString(MessageCodec.ToFrame(encoded.Decoded())));
    }

    [Fact]
    public void Encoded_bytes_that_are_not_exactly_their_entries_are_refused()
    {
        var run = EncodedEntries.Of(Sample());

        // Cut short (a torn run), one entry too many claimed, or bytes left over: each a protocol error, never entries.
        Assert.Throws<ProtocolException>(() => new EncodedEntries(run.Count, run.Bytes[..^5]).Decode(101));
        Assert.Throws<ProtocolException>(() => new EncodedEntries(run.Count + 1, run.Bytes).Decode(101));
        Assert.Throws<ProtocolException>(() => new EncodedEntries(run.Count - 1, run.Bytes).Decode(101));
    }

    [Fact]
    public void A_frame_with_entries_in_both_forms_is_refused()
    {
        var entries = Sample();
        // Only a with-expression on an encoded frame can build one.
        var both = new Replicate(4, A, 100, 3, 90, 5, EncodedEntries.Of(entries)) with { Entries = entries };

        Assert.Throws<InvalidOperationException>(() => MessageCodec.ToFrame(both));
    }
}

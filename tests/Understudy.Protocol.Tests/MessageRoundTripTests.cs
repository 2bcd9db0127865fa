using System.Buffers;
using System.Runtime.InteropServices;

namespace Understudy.Protocol.Tests;

public class MessageRoundTripTests
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

    /// <summary>One of each message, every field set to something other than its default, so a field lost on the way shows.</summary>
    public static TheoryData<IMessage> Messages() =>
    [
        new Heartbeat(A, 42, ServerRole.Primary, 3, 9, 100, 3, 99, 123456, 8090, true, 4242, 8190),
        new HeartbeatAck(Config, 123456, 500, 7, 4, true),
        new ConfigPush(Config, 1, 500),
        new InSyncChange(5, A, 3, 9, InSyncOp.Remove, B),
        new InSyncChangeResult(5, true, Config, "ok"),
        new StepDown(3, B),
        new StepDownResult(3, A, B, true, 100, "caught up"),
        new Replicate(3, A, 10, 2, 9, 77, new[]
        {
            new LogEntry(11, 3, EntryKind.Command, 99, 1, 1, new byte[] { 1, 2, 3 }, 1_764_650_000_123),
            new LogEntry(12, 2, EntryKind.EpochStart, 98, 2, 2, new byte[] { 4 }, long.MaxValue),
        }),
        new ReplicateAck(3, B, 11, true, 12, 13, 14, 10, 2, 5, 77),
        new SnapshotChunk(3, A, 500, 2, 4096, 1024, 0xfeedface, new byte[] { 5, 6, 7 }, true, 480, 1),
        new SnapshotAck(3, B, 11, 500, 2048, true, 480),
        new ClientRequest(99, 4, 3, RequestKind.Write, new byte[] { 1, 104, 105 }),
        new ClientResponse(99, 4, ResponseStatus.NotPrimary, 3, A, "not me"u8.ToArray()),
        new ClientResponse(99, 5, ResponseStatus.SessionExpired, 3, A, "session expired: the outcome of request 5 is unknown"u8.ToArray()),
        new PrimaryQuery(99, true),
        new PrimaryUpdate(3, 9, A) { ActiveMonitor = B },
        new AdminRequest(1, AdminCommand.Switchover, B),
        new AdminResponse(1, true, "done", "{}"u8.ToArray()) { ActiveMonitor = B },
        new Hello(PeerRole.Server, A, 42, 0xdeadbeef, true, "kv"),
        new ProtocolError(ProtocolErrorCode.FrameTooLarge, "too big"),
    ];

    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_message_reads_back_what_was_written(IMessage message)
    {
        var frame = MessageCodec.ToFrame(message);
        Assert.Equal(MessageCodec.HeaderSize + message.Size, frame.Length);

        var sequence = new ReadOnlySequence<byte>(frame);
        Assert.True(MessageCodec.TryReadFrame(ref sequence, MessageCodec.DefaultMaxFrameSize, out var type, out var body));
        Assert.Equal(message.Type, type);
        Assert.Equal(0, sequence.Length);

        var decoded = MessageCodec.Decode(type, body);
        Assert.Equal(Normalize(message), Normalize(decoded));
    }

    /// <summary>
    /// Comparing encodings cannot see a field that the writer drops and the reader never reads: both sides
    /// agree on its absence. Compare what the caller put in with what the reader gives back, field by field.
    /// </summary>
    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_field_reads_back_as_it_was_set(IMessage message)
    {
        var sent = Fields(message, message.Type.ToString()).ToList();
        var unset = sent.Where(f => IsDefault(f.Value)).Select(f => f.Path).ToList();
        Assert.True(unset.Count == 0, $"the sample leaves fields at their default, so losing them would go unseen: {string.Join(", ", unset)}");

        var frame = MessageCodec.ToFrame(message);
        var read = Fields(MessageCodec.Decode(message.Type, frame.AsSpan(MessageCodec.HeaderSize)), message.Type.ToString()).ToList();
        Assert.Equal(sent, read);
    }

    [Fact]
    public void Frame_over_the_limit_is_refused_before_reading_its_body()
    {
        var header = new byte[] { 0xff, 0xff, 0xff, 0x7f };
        var sequence = new ReadOnlySequence<byte>(header);
        var e = Assert.Throws<ProtocolException>(() => MessageCodec.TryReadFrame(ref sequence, 1024, out _, out _));
        Assert.Contains("over the limit", e.Message);
    }

    [Fact]
    public void Truncated_body_is_a_protocol_error_not_a_crash()
    {
        var frame = MessageCodec.ToFrame(new Heartbeat(A, 1, ServerRole.Backup, 1, 1, 1, 1, 1, 1, 1, true, 1, 1));
        var body = frame.AsSpan(MessageCodec.HeaderSize, frame.Length - MessageCodec.HeaderSize - 3).ToArray();
        Assert.Throws<ProtocolException>(() => MessageCodec.Decode(MessageType.Heartbeat, body));
    }

    [Fact]
    public void A_frame_of_many_entries_reads_back_every_command_with_small_ones_sharing_a_few_arrays()
    {
        // A backup decodes hundreds of thousands of entries a second while catching up: their commands are copied
        // into shared pieces under the large object heap's size, not one array each; one too large for a piece
        // gets its own, and empty ones stay empty.
        var sizes = Enumerable.Range(0, 2000).Select(i => i switch { 3 => 0, 700 => 70_000, _ => 1 + (i % 150) }).ToArray();
        var entries = sizes.Select((size, i) => new LogEntry(101 + i, 4, size == 0 ? EntryKind.EpochStart : EntryKind.Command, 7, i, i, Enumerable.Range(0, size).Select(b => (byte)(b + i)).ToArray(), 1_764_650_000_000 + i)).ToArray();
        var frame = new Replicate(4, A, 100, 3, 90, 5, entries);
        var body = MessageCodec.ToFrame(frame).AsSpan(MessageCodec.HeaderSize).ToArray();

        var read = (Replicate)MessageCodec.Decode(MessageType.Replicate, body);

        Assert.Equal(Normalize(frame), Normalize(read));
        var arrays = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        foreach (var entry in read.Entries.Span)
        {
            if (entry.Command.Length > 0)
            {
                Assert.True(MemoryMarshal.TryGetArray(entry.Command, out var segment));
                arrays.Add(segment.Array!);
            }
        }

        // About 220 KB of commands: a few 64 KiB pieces and the big one, not 1,999 arrays.
        Assert.InRange(arrays.Count, 2, 8);
        Assert.All(arrays, a => Assert.True(a.Length <= 64 * 1024 || a.Length == 70_000, $"an array of {a.Length} bytes: pieces must stay under the large object heap's threshold"));
    }

    [Fact]
    public void Count_larger_than_the_body_is_refused_before_allocating()
    {
        // A Replicate whose entry count claims two billion entries in a few bytes.
        var frame = MessageCodec.ToFrame(new Replicate(1, A, 0, 0, 0, 0, Array.Empty<LogEntry>()));
        var body = frame.AsSpan(MessageCodec.HeaderSize).ToArray();
        body[^4] = 0xff;
        body[^3] = 0xff;
        body[^2] = 0xff;
        body[^1] = 0x7f;
        var e = Assert.Throws<ProtocolException>(() => MessageCodec.Decode(MessageType.Replicate, body));
        Assert.Contains("claims", e.Message);
    }

    [Fact]
    public void Snapshot_chunk_over_the_size_limit_is_refused_before_its_data_is_copied()
    {
        var data = new byte[SnapshotChunk.MaxDataBytes + 1];
        var chunk = new SnapshotChunk(1, A, 10, 1, data.Length, 0, SnapshotChunk.ChecksumOf(data), data, true, 10, 1);
        var body = MessageCodec.ToFrame(chunk).AsSpan(MessageCodec.HeaderSize).ToArray();
        var e = Assert.Throws<ProtocolException>(() => MessageCodec.Decode(MessageType.SnapshotChunk, body));
        Assert.Contains("over the limit", e.Message);
    }

    [Fact]
    public void Snapshot_chunk_past_the_end_of_its_snapshot_is_refused()
    {
        var chunk = new SnapshotChunk(1, A, 10, 1, 100, 99, 0, new byte[] { 1, 2 }, true, 10, 1);
        var body = MessageCodec.ToFrame(chunk).AsSpan(MessageCodec.HeaderSize).ToArray();
        Assert.Throws<ProtocolException>(() => MessageCodec.Decode(MessageType.SnapshotChunk, body));
    }

    [Fact]
    public void Snapshot_chunk_checksum_is_crc32c()
    {
        // The standard CRC-32C check value: "123456789" gives e3069283.
        Assert.Equal(0xe3069283u, SnapshotChunk.ChecksumOf("123456789"u8));
    }

    [Fact]
    public void Unknown_message_type_is_a_protocol_error()
    {
        Assert.Throws<ProtocolException>(() => MessageCodec.Decode((MessageType)200, ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void Node_address_parses_host_and_port()
    {
        Assert.Equal(new NodeAddress("localhost", 8090), NodeAddress.Parse("localhost:8090"));
        Assert.False(NodeAddress.TryParse("localhost", out _));
        Assert.False(NodeAddress.TryParse("localhost:99999", out _));
        Assert.Throws<FormatException>(() => NodeAddress.Parse("nonsense"));
    }

    /// <summary>
    /// Every settable field, recursively (configurations, addresses, entries, lists), as (path, value) with
    /// byte payloads as hex and lists with their length, so two messages compare by content.
    /// </summary>
    private static IEnumerable<(string Path, object? Value)> Fields(object? value, string path)
    {
        switch (value)
        {
            case null or string or bool or Enum or byte or int or long or ulong:
                yield return (path, value);
                yield break;
            case ReadOnlyMemory<byte> bytes:
                yield return (path, Convert.ToHexString(bytes.Span));
                yield break;
            case ReadOnlyMemory<LogEntry> entries:
                value = entries.ToArray();
                break;
        }

        if (value is System.Collections.IEnumerable items)
        {
            var i = 0;
            foreach (var item in items)
            {
                foreach (var field in Fields(item, $"{path}[{i}]"))
                {
                    yield return field;
                }

                i++;
            }

            yield return ($"{path}.Count", i);
            yield break;
        }

        foreach (var property in value.GetType().GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            if (property.SetMethod is not null)
            {
                foreach (var field in Fields(property.GetValue(value), $"{path}.{property.Name}"))
                {
                    yield return field;
                }
            }
        }
    }

    private static bool IsDefault(object? value) => value switch
    {
        null => true,
        string s => s.Length == 0,
        _ => value.Equals(Activator.CreateInstance(value.GetType())),
    };

    /// <summary>Messages holding arrays compare by reference: compare their encodings instead.</summary>
    private static string Normalize(IMessage m) => Convert.ToHexString(MessageCodec.ToFrame(m));
}

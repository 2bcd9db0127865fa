using System.Buffers;

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

    public static TheoryData<IMessage> Messages() =>
    [
        new Heartbeat(A, 42, ServerRole.Primary, 3, 9, 100, 3, 99, 123456, 8090, true, 4242, 8190),
        new HeartbeatAck(Config, 123456, 500, 7),
        new ConfigPush(Config, 1, 500),
        new InSyncChange(5, A, 3, 9, InSyncOp.Remove, B),
        new InSyncChangeResult(5, true, Config, "ok"),
        new StepDown(3, B),
        new StepDownResult(3, A, B, true, 100, string.Empty),
        new Replicate(3, A, 10, 2, 9, 77, new[]
        {
            new LogEntry(11, 3, EntryKind.Command, 99, 1, 1, new byte[] { 1, 2, 3 }),
            new LogEntry(12, 3, EntryKind.EpochStart, 0, 0, 0, Array.Empty<byte>()),
        }),
        new ReplicateAck(3, B, 11, true, 12, 12, 12, 10, 0, 0, 77),
        new ClientRequest(99, 4, 3, RequestKind.Write, new byte[] { 1, 104, 105 }),
        new ClientResponse(99, 4, ResponseStatus.NotPrimary, 3, A, "not me"u8.ToArray()),
        new PrimaryQuery(99, true),
        new PrimaryUpdate(3, 9, A),
        new AdminRequest(1, AdminCommand.Switchover, B),
        new AdminResponse(1, true, "done", "{}"u8.ToArray()),
        new Hello(PeerRole.Server, A, 42, 0xdeadbeef, true),
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

    /// <summary>Messages holding arrays compare by reference: compare their encodings instead.</summary>
    private static string Normalize(IMessage m) => Convert.ToHexString(MessageCodec.ToFrame(m));
}

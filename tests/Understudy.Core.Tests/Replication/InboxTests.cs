using Understudy.Core.Tests.Monitor;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// The hosts filter by <c>SenderOf</c> on the transport thread and deliver with <c>Deliver</c> on the loop:
/// the two must name the same messages, or a message would be let in and then dropped (or the reverse).
/// </summary>
public class InboxTests
{
    private static readonly NodeAddress A = new("127.0.0.1", 8090);
    private static readonly NodeAddress B = new("127.0.0.1", 8089);

    private static ClusterConfig Config => ClusterConfig.Initial with
    {
        Epoch = 1,
        Version = 1,
        Primary = A,
        InSync = [B, A],
        Members = [new MemberInfo(B, 1), new MemberInfo(A, 2)],
    };

    /// <summary>One message of every type.</summary>
    private static readonly IMessage[] Samples =
    [
        new Heartbeat(B, 11, ServerRole.Backup, 1, 1, 0, 0, 0, 1, 1, true, 1, 1),
        new HeartbeatAck(Config, 1, 500, 99),
        new ConfigPush(Config, 1, 500),
        new InSyncChange(1, A, 1, 1, InSyncOp.Remove, B),
        new InSyncChangeResult(1, false, Config, "no"),
        new StepDown(1, B),
        new StepDownResult(1, A, B, false, 0, "no"),
        new Replicate(1, A, 0, 0, 0, 1, Array.Empty<LogEntry>()),
        new ReplicateAck(1, B, 11, false, 0, 0, 0, 0, 0, 0, 1),
        new SnapshotChunk(1, A, 5, 1, 64, 0, 0, new byte[] { 1 }, false, 5, 1),
        new SnapshotAck(1, B, 11, 5, 0, false, 0),
        new ClientRequest(7, 1, 1, RequestKind.Read, MessageStoreCommands.Count()),
        new ClientResponse(7, 1, ResponseStatus.NotPrimary, 1, A, Array.Empty<byte>()),
        new PrimaryQuery(7, true),
        new PrimaryUpdate(1, 1, A),
        new AdminRequest(1, AdminCommand.Status, NodeAddress.None),
        new AdminResponse(1, true, string.Empty, Array.Empty<byte>()),
        new Hello(PeerRole.Client, NodeAddress.None, 1, 1, false),
        new ProtocolError(ProtocolErrorCode.UnexpectedMessage, "no"),
    ];

    public static TheoryData<IMessage> Messages() => new(Samples);

    [Fact]
    public void The_samples_cover_every_message_type()
    {
        var covered = Samples.Select(m => m.Type).ToHashSet();
        Assert.Equal(Enum.GetValues<MessageType>().ToHashSet(), covered);
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void A_server_delivers_exactly_what_it_lets_in(IMessage message)
    {
        var server = new ServerHarness(B);
        var delivered = ServerInbox.Deliver(server.Node, new ClientRef(1), message);
        Assert.Equal(ServerInbox.SenderOf(message.Type) != ServerSender.None, delivered);
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void The_monitor_delivers_exactly_what_it_lets_in(IMessage message)
    {
        var monitor = new MonitorHarness(Config);
        var delivered = MonitorInbox.Deliver(monitor.Node, new ClientRef(1), message);
        Assert.Equal(MonitorInbox.SenderOf(message.Type) != MonitorSender.None, delivered);
        Assert.Equal(MonitorInbox.SenderOf(message.Type) == MonitorSender.Server, !MonitorInbox.ServerOf(message).IsNone);
    }
}

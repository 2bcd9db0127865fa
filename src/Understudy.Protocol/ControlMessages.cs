namespace Understudy.Protocol;

/// <summary>What a server says it is doing.</summary>
public enum ServerRole : byte
{
    Primary = 1,
    Backup = 2,
}

/// <summary>
/// Server to monitor, every heartbeat interval: who it is, what it believes, and how far its log goes.
/// <see cref="SentAt"/> is the server's own monotonic clock; the monitor echoes it so the server
/// can date its lease without trusting anyone else's clock.
/// </summary>
public readonly record struct Heartbeat(
    NodeAddress From,
    ulong Incarnation,
    ServerRole Role,
    long Epoch,
    long ConfigVersion,
    long LastIndex,
    long LastEpoch,
    long CommitIndex,
    long SentAt,
    int Priority,
    bool Durable,
    int Pid,
    int HttpPort) : IMessage<Heartbeat>
{
    public MessageType Type => MessageType.Heartbeat;

    public int Size => WireWriter.SizeOf(From) + 8 + 1 + 8 + 8 + 8 + 8 + 8 + 8 + 4 + 1 + 4 + 4;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteAddress(From);
        w.WriteUInt64(Incarnation);
        w.WriteByte((byte)Role);
        w.WriteInt64(Epoch);
        w.WriteInt64(ConfigVersion);
        w.WriteInt64(LastIndex);
        w.WriteInt64(LastEpoch);
        w.WriteInt64(CommitIndex);
        w.WriteInt64(SentAt);
        w.WriteInt32(Priority);
        w.WriteBool(Durable);
        w.WriteInt32(Pid);
        w.WriteInt32(HttpPort);
    }

    public static Heartbeat Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(Heartbeat));
        var m = new Heartbeat(
            r.ReadAddress("from"),
            r.ReadUInt64("incarnation"),
            r.ReadEnum("role", ServerRole.Backup),
            r.ReadInt64("epoch"),
            r.ReadInt64("configVersion"),
            r.ReadInt64("lastIndex"),
            r.ReadInt64("lastEpoch"),
            r.ReadInt64("commitIndex"),
            r.ReadInt64("sentAt"),
            r.ReadInt32("priority"),
            r.ReadBool("durable"),
            r.ReadInt32("pid"),
            r.ReadInt32("httpPort"));
        r.End();
        return m;
    }
}

/// <summary>
/// Monitor to server, in answer to a heartbeat: the configuration the answering monitor holds and, from the
/// active monitor to the primary of the current epoch, a lease of <see cref="LeaseMs"/> counted from the echoed
/// <see cref="EchoSentAt"/>. Servers heartbeat every monitor of the group, so acks come from followers too: a
/// follower answers with its copy of the configuration, <see cref="LeaseMs"/> 0 and <see cref="FromActive"/> false.
/// </summary>
/// <param name="Config">The configuration the answering monitor holds; servers adopt it when its version is newer.</param>
/// <param name="EchoSentAt">The heartbeat's <see cref="Heartbeat.SentAt"/>, so the server dates its lease on its own clock.</param>
/// <param name="LeaseMs">The lease granted (0 for none).</param>
/// <param name="MonitorIncarnation">Random per monitor process start.</param>
/// <param name="MonitorTerm">The answering monitor's leader term in its group (never decreases); a server ignores
/// lease grants from a term lower than the highest it has seen. A group of one is always term 1.</param>
/// <param name="FromActive">Whether the answering monitor is the active one; a server takes a lease only from such an ack,
/// and sends its other monitor-bound messages to that monitor.</param>
public readonly record struct HeartbeatAck(ClusterConfig Config, long EchoSentAt, int LeaseMs, ulong MonitorIncarnation, long MonitorTerm = 1, bool FromActive = true) : IMessage<HeartbeatAck>
{
    public MessageType Type => MessageType.HeartbeatAck;

    public int Size => Config.Size + 8 + 4 + 8 + 8 + 1;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        Config.Format(ref w);
        w.WriteInt64(EchoSentAt);
        w.WriteInt32(LeaseMs);
        w.WriteUInt64(MonitorIncarnation);
        w.WriteInt64(MonitorTerm);
        w.WriteBool(FromActive);
    }

    public static HeartbeatAck Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(HeartbeatAck));
        var m = new HeartbeatAck(
            ClusterConfig.Parse(ref r),
            r.ReadInt64("echoSentAt"),
            r.ReadInt32("leaseMs"),
            r.ReadUInt64("monitorIncarnation"),
            r.ReadInt64("monitorTerm"),
            r.ReadBool("fromActive"));
        r.End();
        return m;
    }
}

/// <summary>
/// Monitor to servers when the configuration changes. Sent to the new primary it is the
/// promotion: <see cref="LeaseBase"/> echoes that server's last heartbeat time, so the lease is
/// dated on the server's own clock.
/// </summary>
public readonly record struct ConfigPush(ClusterConfig Config, long LeaseBase, int LeaseMs) : IMessage<ConfigPush>
{
    public MessageType Type => MessageType.ConfigPush;

    public int Size => Config.Size + 8 + 4;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        Config.Format(ref w);
        w.WriteInt64(LeaseBase);
        w.WriteInt32(LeaseMs);
    }

    public static ConfigPush Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(ConfigPush));
        var m = new ConfigPush(ClusterConfig.Parse(ref r), r.ReadInt64("leaseBase"), r.ReadInt32("leaseMs"));
        r.End();
        return m;
    }
}

/// <summary>Add a caught-up backup to the in-sync set, or remove a lagging one.</summary>
public enum InSyncOp : byte
{
    Add = 1,
    Remove = 2,
}

/// <summary>
/// Primary to monitor: change the in-sync set, compare-and-set on <see cref="ExpectedVersion"/>
/// and valid only for <see cref="Epoch"/>. The primary never changes the set on its own.
/// </summary>
public readonly record struct InSyncChange(long RequestId, NodeAddress From, long Epoch, long ExpectedVersion, InSyncOp Op, NodeAddress Member) : IMessage<InSyncChange>
{
    public MessageType Type => MessageType.InSyncChange;

    public int Size => 8 + WireWriter.SizeOf(From) + 8 + 8 + 1 + WireWriter.SizeOf(Member);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(RequestId);
        w.WriteAddress(From);
        w.WriteInt64(Epoch);
        w.WriteInt64(ExpectedVersion);
        w.WriteByte((byte)Op);
        w.WriteAddress(Member);
    }

    public static InSyncChange Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(InSyncChange));
        var m = new InSyncChange(r.ReadInt64("requestId"), r.ReadAddress("from"), r.ReadInt64("epoch"), r.ReadInt64("expectedVersion"), r.ReadEnum("op", InSyncOp.Remove), r.ReadAddress("member"));
        r.End();
        return m;
    }
}

/// <summary>Monitor to primary: whether the in-sync change was made, and the configuration now.</summary>
public readonly record struct InSyncChangeResult(long RequestId, bool Accepted, ClusterConfig Config, string Reason) : IMessage<InSyncChangeResult>
{
    public MessageType Type => MessageType.InSyncChangeResult;

    public int Size => 8 + 1 + Config.Size + WireWriter.SizeOf(Reason);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(RequestId);
        w.WriteBool(Accepted);
        Config.Format(ref w);
        w.WriteString(Reason);
    }

    public static InSyncChangeResult Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(InSyncChangeResult));
        var m = new InSyncChangeResult(r.ReadInt64("requestId"), r.ReadBool("accepted"), ClusterConfig.Parse(ref r), r.ReadString("reason"));
        r.End();
        return m;
    }
}

/// <summary>
/// Monitor to primary, for a planned switchover: stop taking writes and report when
/// <see cref="Target"/> holds the whole log. <see cref="NodeAddress.None"/> as target cancels.
/// </summary>
public readonly record struct StepDown(long Epoch, NodeAddress Target) : IMessage<StepDown>
{
    public MessageType Type => MessageType.StepDown;

    public int Size => 8 + WireWriter.SizeOf(Target);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(Target);
    }

    public static StepDown Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(StepDown));
        var m = new StepDown(r.ReadInt64("epoch"), r.ReadAddress("target"));
        r.End();
        return m;
    }
}

/// <summary>
/// Primary to monitor: <see cref="Ready"/> means the primary has stopped serving in
/// <see cref="Epoch"/> for good and the target holds every entry up to <see cref="LastIndex"/>.
/// </summary>
public readonly record struct StepDownResult(long Epoch, NodeAddress From, NodeAddress Target, bool Ready, long LastIndex, string Reason) : IMessage<StepDownResult>
{
    public MessageType Type => MessageType.StepDownResult;

    public int Size => 8 + WireWriter.SizeOf(From) + WireWriter.SizeOf(Target) + 1 + 8 + WireWriter.SizeOf(Reason);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteAddress(From);
        w.WriteAddress(Target);
        w.WriteBool(Ready);
        w.WriteInt64(LastIndex);
        w.WriteString(Reason);
    }

    public static StepDownResult Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(StepDownResult));
        var m = new StepDownResult(r.ReadInt64("epoch"), r.ReadAddress("from"), r.ReadAddress("target"), r.ReadBool("ready"), r.ReadInt64("lastIndex"), r.ReadString("reason"));
        r.End();
        return m;
    }
}

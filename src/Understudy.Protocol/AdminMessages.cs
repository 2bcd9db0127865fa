namespace Understudy.Protocol;

/// <summary>What an operator asks the monitor.</summary>
public enum AdminCommand : byte
{
    /// <summary>The cluster's state as JSON.</summary>
    Status = 1,

    /// <summary>A planned handover to the target (or the best in-sync backup) with nothing lost.</summary>
    Switchover = 2,

    /// <summary>Promote the target even if it is not in sync: may lose acknowledged writes.</summary>
    ForcePromote = 3,

    /// <summary>The history of failures, promotions and in-sync changes as JSON.</summary>
    Events = 4,
}

/// <summary>Operator to monitor.</summary>
public readonly record struct AdminRequest(long RequestId, AdminCommand Command, NodeAddress Target) : IMessage<AdminRequest>
{
    public MessageType Type => MessageType.AdminRequest;

    public int Size => 8 + 1 + WireWriter.SizeOf(Target);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(RequestId);
        w.WriteByte((byte)Command);
        w.WriteAddress(Target);
    }

    public static AdminRequest Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(AdminRequest));
        var m = new AdminRequest(r.ReadInt64("requestId"), r.ReadEnum("command", AdminCommand.Events), r.ReadAddress("target"));
        r.End();
        return m;
    }
}

/// <summary>
/// Monitor to operator: success, a line for people, and a JSON body where the command has one. A monitor that
/// is not the active one of its group refuses switchovers and forced promotions and names the active monitor in
/// <see cref="ActiveMonitor"/> (its server-facing address, as the monitor group knows it), so the operator's
/// client can ask that one instead.
/// </summary>
public readonly record struct AdminResponse(long RequestId, bool Ok, string Message, ReadOnlyMemory<byte> Body) : IMessage<AdminResponse>
{
    /// <summary>
    /// On a refusal because this monitor is not the active one: the active monitor's server-facing address, or
    /// <see cref="NodeAddress.None"/> (also on every other response).
    /// </summary>
    public NodeAddress ActiveMonitor { get; init; } = NodeAddress.None;

    /// <summary>Whether this is a refusal from a monitor that is not the active one.</summary>
    public bool IsNotActiveRefusal => !Ok && !ActiveMonitor.IsNone;

    public MessageType Type => MessageType.AdminResponse;

    public int Size => 8 + 1 + WireWriter.SizeOf(Message) + 4 + Body.Length + WireWriter.SizeOf(ActiveMonitor);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(RequestId);
        w.WriteBool(Ok);
        w.WriteString(Message);
        w.WriteBytes(Body.Span);
        w.WriteAddress(ActiveMonitor);
    }

    public static AdminResponse Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(AdminResponse));
        var m = new AdminResponse(r.ReadInt64("requestId"), r.ReadBool("ok"), r.ReadString("message"), r.ReadBytes("body"))
        {
            ActiveMonitor = r.ReadAddress("activeMonitor"),
        };
        r.End();
        return m;
    }
}

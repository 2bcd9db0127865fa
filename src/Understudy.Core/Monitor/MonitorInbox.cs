using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>Who may send the monitor a message of some type.</summary>
public enum MonitorSender
{
    /// <summary>Nobody: the monitor does not take this message.</summary>
    None,

    /// <summary>A server, on the heartbeat port, speaking for the server named in the message.</summary>
    Server,

    /// <summary>A client or an operator, on the client API port.</summary>
    Client,
}

/// <summary>
/// The one map from a decoded message to the <see cref="MonitorNode"/> input it is. The TCP host and the
/// simulator both deliver through it. What belongs to the transport stays with the caller: whether the
/// connection proved it is the server the message names (<see cref="ServerOf"/>), the loop the node runs
/// on, and admin commands the host answers itself.
/// </summary>
public static class MonitorInbox
{
    /// <summary>Who may send the monitor a message of type <paramref name="type"/>.</summary>
    public static MonitorSender SenderOf(MessageType type) => type switch
    {
        MessageType.Heartbeat or MessageType.InSyncChange or MessageType.StepDownResult => MonitorSender.Server,
        MessageType.PrimaryQuery or MessageType.AdminRequest => MonitorSender.Client,
        _ => MonitorSender.None,
    };

    /// <summary>
    /// The server a server-to-monitor message says it comes from (<see cref="NodeAddress.None"/> for any
    /// other message): the caller checks it against who the connection is.
    /// </summary>
    public static NodeAddress ServerOf(IMessage message) => message switch
    {
        Heartbeat m => m.From,
        InSyncChange m => m.From,
        StepDownResult m => m.From,
        _ => NodeAddress.None,
    };

    /// <summary>
    /// Hands <paramref name="message"/> to <paramref name="node"/>. <paramref name="client"/> names the
    /// connection it came on; only client and operator messages use it. Returns false, and touches nothing,
    /// for a message the monitor does not take (exactly those whose <see cref="SenderOf"/> is <see cref="MonitorSender.None"/>).
    /// </summary>
    public static bool Deliver(MonitorNode node, ClientRef client, IMessage message)
    {
        switch (message)
        {
            case Heartbeat m: node.Handle(m); return true;
            case InSyncChange m: node.Handle(m); return true;
            case StepDownResult m: node.Handle(m); return true;
            case PrimaryQuery m: node.Handle(client, m); return true;
            case AdminRequest m: node.Handle(client, m); return true;
            default: return false;
        }
    }
}

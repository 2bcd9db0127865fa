using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>Who may send a server a message of some type.</summary>
public enum ServerSender
{
    /// <summary>Nobody: a server does not take this message.</summary>
    None,

    /// <summary>Any client.</summary>
    Client,

    /// <summary>Only a member of the cluster: the monitor or another server.</summary>
    Member,
}

/// <summary>
/// The one map from a decoded message to the <see cref="ServerNode"/> input it is. The TCP host and the
/// simulator both deliver through it, so the simulator exercises the same mapping production runs. What
/// belongs to the transport stays with the caller: whether a connection may speak for a member, the loop
/// the node runs on, metrics.
/// </summary>
public static class ServerInbox
{
    /// <summary>Who may send a server a message of type <paramref name="type"/>.</summary>
    public static ServerSender SenderOf(MessageType type) => type switch
    {
        MessageType.ClientRequest => ServerSender.Client,
        MessageType.Replicate
            or MessageType.ReplicateAck
            or MessageType.SnapshotChunk
            or MessageType.SnapshotAck
            or MessageType.HeartbeatAck
            or MessageType.ConfigPush
            or MessageType.InSyncChangeResult
            or MessageType.StepDown => ServerSender.Member,
        _ => ServerSender.None,
    };

    /// <summary>
    /// Hands <paramref name="message"/> to <paramref name="node"/>. <paramref name="client"/> names the
    /// connection it came on; only client requests use it. Returns false, and touches nothing, for a
    /// message a server does not take (exactly those whose <see cref="SenderOf"/> is <see cref="ServerSender.None"/>).
    /// </summary>
    public static bool Deliver(ServerNode node, ClientRef client, IMessage message)
    {
        switch (message)
        {
            case ClientRequest m: node.Handle(client, m); return true;
            case Replicate m: node.Handle(m); return true;
            case ReplicateAck m: node.Handle(m); return true;
            case SnapshotChunk m: node.Handle(m); return true;
            case SnapshotAck m: node.Handle(m); return true;
            case HeartbeatAck m: node.Handle(m); return true;
            case ConfigPush m: node.Handle(m); return true;
            case InSyncChangeResult m: node.Handle(m); return true;
            case StepDown m: node.Handle(m); return true;
            default: return false;
        }
    }
}

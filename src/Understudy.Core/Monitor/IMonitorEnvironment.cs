using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// What a <see cref="MonitorNode"/> asks of the world: send, probe a port, store a configuration.
/// Calls take effect in the order made.
/// </summary>
public interface IMonitorEnvironment
{
    /// <summary>Sends to a server over its heartbeat connection (dropped if it has none).</summary>
    void SendToServer<T>(NodeAddress server, in T message)
        where T : IMessage;

    /// <summary>Sends to a client or operator connection.</summary>
    void SendToClient<T>(ClientRef client, in T message)
        where T : IMessage;

    /// <summary>Tries to connect to the server's port; answers with <see cref="MonitorNode.OnProbeResult"/>.</summary>
    void Probe(NodeAddress server);

    /// <summary>
    /// Compare-and-set on the configuration store: replace version <paramref name="expectedVersion"/> with
    /// <paramref name="next"/>, durably. Answers with <see cref="MonitorNode.OnConfigStored"/>.
    /// </summary>
    void ProposeConfig(long expectedVersion, ClusterConfig next);

    /// <summary>Something worth logging, showing or counting happened.</summary>
    void Report(MonitorEvent e);
}

/// <summary>What a probe of a server's port found.</summary>
public enum ProbeOutcome
{
    /// <summary>The port refused the connection: nothing listens there, the process is gone.</summary>
    Refused,

    /// <summary>Something accepted the connection (maybe a paused process: the kernel still accepts).</summary>
    Accepted,

    /// <summary>No answer in time (a partition, say).</summary>
    TimedOut,
}

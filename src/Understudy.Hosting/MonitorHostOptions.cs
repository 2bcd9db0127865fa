using Understudy.Core.Monitor;
using Understudy.Protocol;

namespace Understudy.Hosting;

/// <summary>Where the monitor listens and keeps its configuration, and how it judges servers.</summary>
public sealed record MonitorHostOptions
{
    /// <summary>Servers' heartbeat connections (the original's port 9000).</summary>
    public NodeAddress HeartbeatListen { get; init; } = new("127.0.0.1", 9000);

    /// <summary>Clients and operators (the original's client API port 9001).</summary>
    public NodeAddress ClientListen { get; init; } = new("127.0.0.1", 9001);

    public string DataDirectory { get; init; } = Path.Combine(".understudy", "monitor");

    /// <summary>Dashboard, /cluster, /events, /health, /metrics; port 0 turns HTTP off.</summary>
    public string HttpHost { get; init; } = "127.0.0.1";

    public int HttpPort { get; init; } = 9080;

    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>How long a probe of a silent server's port may take.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromMilliseconds(250);

    public ReadOnlyMemory<byte> ClusterKey { get; init; }

    public MonitorOptions Protocol { get; init; } = new();

    /// <summary>
    /// Every member's heartbeat address, this one included (it names the monitor). Empty: a group of one.
    /// A member's client and Raft addresses are its heartbeat port + 1 and + 2 unless it says otherwise.
    /// </summary>
    public IReadOnlyList<NodeAddress> Peers { get; init; } = [];

    /// <summary>Where this monitor talks Raft with its peers; <see cref="NodeAddress.None"/>: the heartbeat port + 2.</summary>
    public NodeAddress RaftListen { get; init; } = NodeAddress.None;

    public CoordinatorKind Coordinator { get; init; } = CoordinatorKind.File;

    /// <summary>The etcd cluster's client URLs (only with <see cref="CoordinatorKind.Etcd"/>).</summary>
    public IReadOnlyList<string> EtcdEndpoints { get; init; } = [];

    /// <summary>
    /// Raft ports of the members (by heartbeat address) whose Raft port is not their heartbeat port + 2
    /// (`--peers host:port/raftport`); every member must be started with the same list.
    /// </summary>
    public IReadOnlyDictionary<NodeAddress, int> PeerRaftPorts { get; init; } = new Dictionary<NodeAddress, int>();

    /// <summary>The Raft address this monitor listens on.</summary>
    public NodeAddress RaftAddress => RaftListen.IsNone ? RaftAddressOf(HeartbeatListen) : RaftListen;

    /// <summary>The Raft address of a member named by its heartbeat address: as listed in <see cref="PeerRaftPorts"/>, else the heartbeat port + 2.</summary>
    public NodeAddress RaftAddressOf(NodeAddress heartbeat) =>
        new(heartbeat.Host, PeerRaftPorts.TryGetValue(heartbeat, out var port) ? port : heartbeat.Port + 2);

    /// <summary>The client address of another member: its heartbeat port + 1 (only this monitor's own is configurable).</summary>
    public NodeAddress ClientAddressOf(NodeAddress heartbeat) => heartbeat == HeartbeatListen ? ClientListen : new(heartbeat.Host, heartbeat.Port + 1);

    public void Validate()
    {
        foreach (var (address, what) in new[] { (HeartbeatListen, "heartbeat port (--port)"), (ClientListen, "client port (--client-port)") })
        {
            if (address.Port is <= 0 or > 65535)
            {
                throw new ArgumentException($"{what} {address.Port} is not a TCP port (1-65535)");
            }
        }

        if (HeartbeatListen == ClientListen)
        {
            throw new ArgumentException($"the heartbeat and client ports are both {HeartbeatListen.Port}; they must differ");
        }

        OptionChecks.HttpPort(HttpPort);
        OptionChecks.ClusterKey(ClusterKey);
        ValidateGroup();

        Protocol.Validate();
    }

    private void ValidateGroup()
    {
        if (!Enum.IsDefined(Coordinator))
        {
            throw new ArgumentException($"coordinator {(int)Coordinator} is not one of file, raft, etcd");
        }

        var duplicate = Peers.GroupBy(p => p).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException($"--peers lists {duplicate.Key} twice; list each monitor's heartbeat address once");
        }

        if (Peers.Count > 0 && !Peers.Contains(HeartbeatListen))
        {
            throw new ArgumentException($"--peers ({string.Join(',', Peers)}) must include this monitor's own heartbeat address {HeartbeatListen} (--host and --port)");
        }

        // An even group tolerates no more failures than the odd group one smaller, and more than five only slows commits.
        if (Peers.Count is not (0 or 1 or 3 or 5))
        {
            throw new ArgumentException($"--peers lists {Peers.Count} monitors; a group has 1, 3 or 5 (an even group survives no more failures than one fewer)");
        }

        switch (Coordinator)
        {
            case CoordinatorKind.File when Peers.Count > 1:
                throw new ArgumentException($"a group of {Peers.Count} monitors needs --coordinator raft or etcd: the file coordinator is a group of one");
            case CoordinatorKind.Raft when Peers.Count < 3:
                throw new ArgumentException("--coordinator raft needs --peers with the 3 or 5 monitors' heartbeat addresses (this one included)");
            case CoordinatorKind.Raft:
                if (RaftAddress.Port is <= 0 or > 65535)
                {
                    throw new ArgumentException($"Raft port {RaftAddress.Port} is not a TCP port (1-65535); pass --raft-port");
                }

                // The others find this monitor's Raft endpoint from --peers alone: a --raft-port they cannot derive
                // would leave it out of every election, silently.
                if (RaftAddress.Port != RaftAddressOf(HeartbeatListen).Port)
                {
                    throw new ArgumentException($"--raft-port {RaftAddress.Port} is not what the other monitors expect from --peers ({RaftAddressOf(HeartbeatListen).Port}); list this monitor in --peers as {HeartbeatListen}/{RaftAddress.Port} on every monitor, or use the heartbeat port + 2");
                }

                foreach (var (peer, port) in PeerRaftPorts)
                {
                    if (!Peers.Contains(peer) || port is <= 0 or > 65535)
                    {
                        throw new ArgumentException($"Raft port {port} given for {peer}, which is not a member listed in --peers or not a TCP port");
                    }
                }

                if (RaftAddress.Port == HeartbeatListen.Port || RaftAddress.Port == ClientListen.Port)
                {
                    throw new ArgumentException($"the Raft port {RaftAddress.Port} is also the heartbeat or client port; choose another with --raft-port");
                }

                break;
            case CoordinatorKind.Etcd when EtcdEndpoints.Count == 0:
                throw new ArgumentException("--coordinator etcd needs --etcd-endpoints, for example http://127.0.0.1:2379");
        }

        if (Coordinator != CoordinatorKind.Etcd && EtcdEndpoints.Count > 0)
        {
            throw new ArgumentException("--etcd-endpoints is only for --coordinator etcd");
        }

        foreach (var endpoint in EtcdEndpoints)
        {
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Port <= 0)
            {
                throw new ArgumentException($"etcd endpoint '{endpoint}' is not a URL like http://127.0.0.1:2379");
            }
        }
    }
}

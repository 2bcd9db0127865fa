using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Hosting;

/// <summary>Where a server listens, where its monitor is, where its data lives, and how it paces itself.</summary>
public sealed record ServerHostOptions
{
    /// <summary>Address to bind (host may be 0.0.0.0).</summary>
    public NodeAddress Listen { get; init; } = new("127.0.0.1", 8090);

    /// <summary>The address other members and clients use, and this server's identity; defaults to <see cref="Listen"/>.</summary>
    public NodeAddress? Advertise { get; init; }

    /// <summary>
    /// Every monitor's heartbeat address (the whole group): heartbeats go to all, other monitor-bound messages to the
    /// active one.
    /// </summary>
    public IReadOnlyList<NodeAddress> Monitors { get; init; } = [new("127.0.0.1", 9000)];

    /// <summary>A group of one monitor: the first of <see cref="Monitors"/>; setting it replaces the list.</summary>
    public NodeAddress Monitor
    {
        get => Monitors.Count > 0 ? Monitors[0] : NodeAddress.None;
        init => Monitors = [value];
    }

    public string DataDirectory { get; init; } = Path.Combine(".understudy", "server-8090");

    public FsyncPolicy Fsync { get; init; } = FsyncPolicy.Always;

    /// <summary>Size at which a log segment is closed (--segment-bytes): compaction removes whole segments only.</summary>
    public long SegmentSize { get; init; } = DurableLogOptions.DefaultSegmentSize;

    /// <summary>Where /primary, /replica, /health and /metrics are served; port 0 turns HTTP off.</summary>
    public string HttpHost { get; init; } = "127.0.0.1";

    public int HttpPort { get; init; }

    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Shared cluster key (at least 16 bytes) authenticating every member message; empty for none.</summary>
    public ReadOnlyMemory<byte> ClusterKey { get; init; }

    /// <summary>Protocol settings (heartbeat interval, min-in-sync, priority, batching, snapshot interval...).</summary>
    public ServerOptions Protocol { get; init; } = new();

    /// <summary>How many messages the message store keeps (--retention-messages, --retention-bytes); all by default.</summary>
    public MessageRetention Retention { get; init; } = MessageRetention.KeepEverything;

    /// <summary>
    /// Makes the state machine this server replicates (called once per start; every server of a cluster must run the
    /// same one). Null keeps the message store with <see cref="Retention"/>.
    /// </summary>
    public Func<IStateMachine>? StateMachine { get; init; }

    /// <summary>
    /// An <see cref="IStateMachine.Apply"/> slower than this is logged as a warning and counted in
    /// <c>understudy_server_slow_applies_total</c>: Apply runs on the node's loop, so heartbeats and replication wait for it.
    /// </summary>
    public TimeSpan SlowApplyThreshold { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Whether the server runs a primary's code once at start, on throwaway nodes in memory (<see cref="PromotionRehearsal"/>),
    /// so that its first promotion does not wait for the JIT to compile it. On by default; off only to measure what it saves.
    /// </summary>
    public bool RehearsePromotion { get; init; } = true;

    /// <summary>A fresh state machine: <see cref="StateMachine"/>'s, or the message store with <see cref="Retention"/>.</summary>
    public IStateMachine CreateStateMachine() => StateMachine is null
        ? new MessageStore(Retention)
        : StateMachine() ?? throw new InvalidOperationException("ServerHostOptions.StateMachine returned null: the factory must make a state machine");

    public NodeAddress Identity => Advertise ?? (Listen.Host is "0.0.0.0" or "::" ? Listen with { Host = "127.0.0.1" } : Listen);

    public void Validate()
    {
        if (Listen.Port is <= 0 or > 65535)
        {
            throw new ArgumentException($"port {Listen.Port} is not a TCP port (1-65535); pass --port");
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException("no data folder: pass --data PATH");
        }

        if (Monitors.Count == 0)
        {
            throw new ArgumentException("no monitor: pass --monitor host:port[,host:port...]");
        }

        if (Monitors.Distinct().Count() != Monitors.Count)
        {
            throw new ArgumentException($"--monitor names a monitor twice ({string.Join(",", Monitors)}): list each heartbeat address once");
        }

        if (SegmentSize is < DurableLogOptions.MinSegmentSize or > DurableLogOptions.MaxSegmentSize)
        {
            throw new ArgumentException($"--segment-bytes {SegmentSize} is out of range ({DurableLogOptions.MinSegmentSize} to {DurableLogOptions.MaxSegmentSize})");
        }

        OptionChecks.HttpPort(HttpPort);
        OptionChecks.ClusterKey(ClusterKey);

        if (SlowApplyThreshold <= TimeSpan.Zero)
        {
            throw new ArgumentException($"the slow-apply threshold is {SlowApplyThreshold.TotalMilliseconds} ms: it must be positive");
        }

        Protocol.Validate();
        Retention.Validate();
    }
}

using Microsoft.Extensions.Time.Testing;

namespace Understudy.Core.Tests.Monitor;

/// <summary>
/// Drives a <see cref="MonitorNode"/> as its host would; the test plays the servers (heartbeats), the
/// network (connection drops, probe answers) and the configuration store (<see cref="Store"/>).
/// </summary>
public sealed class MonitorHarness
{
    public static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);

    /// <summary>Heartbeat 50 ms, suspected after 300 ms, lease 500 ms, bootstrap after 300 ms, switchover 1 s.</summary>
    public static readonly MonitorOptions DefaultOptions = new()
    {
        HeartbeatInterval = TimeSpan.FromMilliseconds(50),
        FailureTimeout = TimeSpan.FromMilliseconds(300),
        LeaseDuration = TimeSpan.FromMilliseconds(500),
        BootstrapDelay = TimeSpan.FromMilliseconds(300),
        SwitchoverTimeout = TimeSpan.FromSeconds(1),
    };

    private readonly Dictionary<NodeAddress, ulong> _incarnations = [];

    public MonitorHarness(ClusterConfig stored, MonitorOptions? options = null, FakeTimeProvider? time = null, MonitorLeadership? leadership = null, IMonitorLeaseRule? leaseRule = null)
    {
        Time = time ?? new FakeTimeProvider();
        Env = new RecordingMonitorEnvironment();
        Node = new MonitorNode(options ?? DefaultOptions, stored, Env, Time, 99, leaseRule: leaseRule, leadership: leadership);
        foreach (var m in stored.Members)
        {
            _incarnations[m.Address] = (ulong)m.Address.Port;
        }
    }

    public FakeTimeProvider Time { get; }

    public RecordingMonitorEnvironment Env { get; }

    public MonitorNode Node { get; }

    /// <summary>
    /// A monitor with epoch 1 (version 3) stored: P primary, the given in-sync set, every server heartbeating,
    /// run for a second so it is past its restart lease. The recording starts empty.
    /// </summary>
    public static MonitorHarness Stable(NodeAddress[]? inSync = null)
    {
        var h = new MonitorHarness(Config(1, 3, P, inSync ?? All));
        h.Run(TimeSpan.FromSeconds(1), All);
        Assert.Equal(FailoverPhase.Stable, h.Node.Phase);
        Assert.Empty(h.Env.Proposals);
        h.Env.Clear();
        return h;
    }

    /// <summary>A heartbeat as the server would send it; its role and epoch follow the stored configuration unless given.</summary>
    public void Beat(NodeAddress from, ServerRole? role = null, long? epoch = null, long lastIndex = 10, long? lastEpoch = null, bool restarted = false, int? priority = null, bool durable = true)
    {
        var incarnation = _incarnations.GetValueOrDefault(from, (ulong)from.Port);
        if (restarted)
        {
            incarnation += 1000;
        }

        _incarnations[from] = incarnation;
        var e = epoch ?? Node.Config.Epoch;
        var r = role ?? (from == Node.Config.Primary ? ServerRole.Primary : ServerRole.Backup);
        Node.Handle(new Heartbeat(from, incarnation, r, e, Node.Config.Version, lastIndex, lastEpoch ?? e, lastIndex, Time.GetTimestamp(), priority ?? from.Port, durable, 0, 0));
    }

    /// <summary>Advances time in heartbeat steps; at each, <paramref name="alive"/> heartbeat and the monitor ticks.</summary>
    public void Run(TimeSpan duration, params NodeAddress[] alive)
    {
        for (var elapsed = TimeSpan.Zero; elapsed < duration; elapsed += Step)
        {
            Time.Advance(Step);
            foreach (var a in alive)
            {
                Beat(a);
            }

            Node.Tick();
        }
    }

    /// <summary>The heartbeat connection drops and the port refuses: a crash.</summary>
    public void Crash(NodeAddress server)
    {
        Node.OnServerConnectionLost(server);
        Node.OnProbeResult(server, ProbeOutcome.Refused);
    }

    /// <summary>The store completes the last proposal.</summary>
    public ClusterConfig Store(bool committed = true)
    {
        var proposal = Env.Proposals[^1];
        var current = committed ? proposal.Next : Node.Config;
        Node.OnConfigStored(committed, current);
        return current;
    }

    /// <summary>The lease the last heartbeat answer to <paramref name="server"/> granted (0 for none).</summary>
    public int LastLeaseGrantedTo(NodeAddress server) => Env.SentTo<HeartbeatAck>(server)[^1].LeaseMs;

    public static ClientRef Admin { get; } = new(500);

    public void AdminRequest(AdminCommand command, NodeAddress target) =>
        Node.Handle(Admin, new AdminRequest(7, command, target));

    public List<AdminResponse> AdminResponses => Env.SentToClient<AdminResponse>(Admin);
}

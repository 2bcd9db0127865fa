using System.Globalization;
using Understudy.Client;
using Understudy.Core.StateMachines;
using Understudy.Hosting;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Processes;
using Understudy.Protocol;

namespace Understudy.Orchestration.Clusters;

/// <summary>The shape of a local cluster of real processes.</summary>
public sealed record LocalClusterOptions
{
    public int Servers { get; init; } = 3;

    /// <summary>Server N listens on BasePort - (N - 1): 8090, 8089, 8088 as in the original.</summary>
    public int BasePort { get; init; } = 8090;

    /// <summary>How many monitors: a group of 1 (the configuration in a file), 3 or 5 (a Raft group among them).</summary>
    public int Monitors { get; init; } = 1;

    /// <summary>Monitor 1's heartbeat port; monitor N's is this + 10·(N-1): 9000, 9010, 9020...</summary>
    public int MonitorPort { get; init; } = 9000;

    /// <summary>Monitor 1's client API port; monitor N's is this + 10·(N-1): 9001, 9011, 9021...</summary>
    public int ClientPort { get; init; } = 9001;

    /// <summary>Monitor 1's dashboard port (monitor N's is this + N-1: 9080, 9081...); servers use their port + 100. 0 turns HTTP off.</summary>
    public int HttpPort { get; init; } = 9080;

    /// <summary>Explicit ports per monitor (overrides the spacing above), for groups on free ports.</summary>
    public IReadOnlyList<LocalMonitorPorts>? MonitorPorts { get; init; }

    /// <summary>Monitor N's ports: explicit, or monitor 1's spaced by 10 (heartbeat, client, Raft at heartbeat + 2) and the dashboard by 1.</summary>
    public LocalMonitorPorts MonitorPortsOf(int n) => MonitorPorts is { } ports
        ? ports[n - 1]
        : new LocalMonitorPorts(MonitorPort + (10 * (n - 1)), ClientPort + (10 * (n - 1)), MonitorPort + (10 * (n - 1)) + 2, HttpPort > 0 ? HttpPort + (n - 1) : 0);

    public bool ServerHttp { get; init; } = true;

    public required string DataDirectory { get; init; }

    public string Fsync { get; init; } = "always";

    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The state machine every server runs (<c>--state-machine</c>); a cluster never mixes two.</summary>
    public BuiltInStateMachine StateMachine { get; init; } = BuiltInStateMachine.Messages;

    /// <summary>Extra flags for every server / the monitor (timings, min-in-sync, log level...).</summary>
    public IReadOnlyList<string> ServerArguments { get; init; } = [];

    public IReadOnlyList<string> MonitorArguments { get; init; } = [];

    /// <summary>Explicit ports per server (overrides BasePort), for clusters on free ports.</summary>
    public IReadOnlyList<int>? ServerPorts { get; init; }

    /// <summary>Per-server hosts (each in its own network namespace, say); null: all on <see cref="Host"/>.</summary>
    public IReadOnlyList<string>? ServerHosts { get; init; }

    /// <summary>The monitor's host when it differs from <see cref="Host"/>.</summary>
    public string? MonitorHost { get; init; }

    /// <summary>Per-monitor hosts (each in its own network namespace, say); null: all on <see cref="MonitorHostName"/>.</summary>
    public IReadOnlyList<string>? MonitorHosts { get; init; }

    /// <summary>Monitor N's host.</summary>
    public string MonitorHostOf(int n) => MonitorHosts is { } hosts ? hosts[n - 1] : MonitorHostName;

    /// <summary>A command each process is started through, by name ("monitor", "server1"...): e.g. `ip netns exec NS`.</summary>
    public Func<string, IReadOnlyList<string>>? Launcher { get; init; }

    public int PortOf(int n) => ServerPorts is { } ports ? ports[n - 1] : BasePort - (n - 1);

    /// <summary>Server N's HTTP port (/primary, /replica, /health, /metrics), or 0 when server HTTP is off.</summary>
    public int HttpPortOf(int n) => !ServerHttp ? 0 : ServerHttpPorts is { } ports ? ports[n - 1] : PortOf(n) + 100;

    public string HostOf(int n) => ServerHosts is { } hosts ? hosts[n - 1] : Host;

    public string MonitorHostName => MonitorHost ?? Host;

    /// <summary>Explicit HTTP ports per server (overrides port + 100), for clusters on free ports.</summary>
    public IReadOnlyList<int>? ServerHttpPorts { get; init; }

    /// <summary>
    /// A cluster on free ports (benchmarks, chaos, tests), with the monitors' HTTP and the servers' HTTP on free ports if
    /// asked: every port of the cluster taken in one reservation, so none is given twice.
    /// </summary>
    public static LocalClusterOptions OnFreePorts(int servers, string dataDirectory, bool monitorHttp = false, int monitors = 1, bool serverHttp = false)
    {
        var ports = FreePorts(servers + (4 * monitors) + (serverHttp ? servers : 0));
        var sets = Enumerable.Range(0, monitors)
            .Select(i => new LocalMonitorPorts(ports[servers + (4 * i)], ports[servers + (4 * i) + 1], ports[servers + (4 * i) + 2], monitorHttp ? ports[servers + (4 * i) + 3] : 0))
            .ToList();
        return new LocalClusterOptions
        {
            Servers = servers,
            ServerPorts = ports[..servers],
            Monitors = monitors,
            MonitorPorts = sets,
            MonitorPort = sets[0].Heartbeat,
            ClientPort = sets[0].Client,
            HttpPort = sets[0].Http,
            ServerHttp = serverHttp,
            ServerHttpPorts = serverHttp ? ports[(servers + (4 * monitors))..] : null,
            DataDirectory = dataDirectory,
        };
    }

    /// <summary>The original's ports if they are free, else ports the OS picks.</summary>
    public LocalClusterOptions WithFreePortsIfTaken()
    {
        var wanted = Enumerable.Range(1, Servers).Select(PortOf).Concat(Enumerable.Range(1, Monitors).SelectMany(n => MonitorPortsOf(n).All(Monitors > 1)));
        if (ServerHttp && HttpPort > 0)
        {
            wanted = wanted.Concat(Enumerable.Range(1, Servers).Select(HttpPortOf));
        }

        if (wanted.All(PortIsFree))
        {
            return this;
        }

        var free = OnFreePorts(Servers, DataDirectory, HttpPort > 0, Monitors);
        return this with
        {
            ServerPorts = free.ServerPorts,
            MonitorPorts = free.MonitorPorts,
            MonitorPort = free.MonitorPort,
            ClientPort = free.ClientPort,
            HttpPort = free.HttpPort,
            ServerHttp = false,
        };
    }

    /// <summary>True when nothing listens on <paramref name="port"/> of the loopback address (false for a port out of range).</summary>
    public static bool PortIsFree(int port) => PortReservations.IsFree(port);

    /// <summary>
    /// Ports free at the time of asking and never handed out before in this process (<see cref="PortReservations"/>):
    /// distinct from every other port of this call and of the earlier ones (the last 8192 handed out).
    /// </summary>
    public static int[] FreePorts(int count) => PortReservations.Take(count);
}

/// <summary>One server of a local cluster.</summary>
public sealed record LocalServer(int Number, NodeAddress Address, ChildProcess Process);

/// <summary>The ports of one monitor: heartbeats (its name in the group), the client API, Raft among the group, the dashboard (0: off).</summary>
public readonly record struct LocalMonitorPorts(int Heartbeat, int Client, int Raft, int Http)
{
    /// <summary>Every port it listens on; Raft only in a group.</summary>
    public IEnumerable<int> All(bool group) => new[] { Heartbeat, Client }.Concat(group ? [Raft] : []).Concat(Http > 0 ? [Http] : []);
}

/// <summary>One monitor of a local cluster: <see cref="Heartbeat"/> names it in the group, clients use <see cref="Client"/>.</summary>
public sealed record LocalMonitor(int Number, NodeAddress Heartbeat, NodeAddress Client, int HttpPort, ChildProcess Process)
{
    /// <summary>Its dashboard, or null when its HTTP port is off.</summary>
    public Uri? Dashboard => HttpPort > 0 ? new Uri($"http://{Client.Host}:{HttpPort}/") : null;
}

/// <summary>
/// A group of monitors (1, 3 or 5) and N servers as child processes of this one (they die with it), with the
/// operations the original Main offered: kill, stop, restart, pause, resume, for servers and monitors alike; and an
/// admin client to watch it, connected to whichever monitor answers.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<LocalServer> _servers = [];
    private readonly List<LocalMonitor> _monitors = [];

    public LocalCluster(LocalClusterOptions options)
    {
        if (options.Monitors is not (1 or 3 or 5))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"a monitor group has 1, 3 or 5 monitors, not {options.Monitors}");
        }

        Options = options;
        Directory.CreateDirectory(options.DataDirectory);
        var logs = Path.Combine(options.DataDirectory, "logs");
        var heartbeats = Enumerable.Range(1, options.Monitors).Select(n => new NodeAddress(options.MonitorHostOf(n), options.MonitorPortsOf(n).Heartbeat)).ToList();

        // Each member's Raft port goes with its heartbeat address: on free ports it is not the heartbeat port + 2 the
        // monitors would otherwise assume, and the group would never hear itself.
        var peers = string.Join(',', heartbeats.Select((h, i) => $"{h}/{Text(options.MonitorPortsOf(i + 1).Raft)}"));
        for (var n = 1; n <= options.Monitors; n++)
        {
            var ports = options.MonitorPortsOf(n);
            var monitorHost = options.MonitorHostOf(n);

            // A group of one keeps the names it always had (monitor, monitor.log), so `up --monitors 1` is what `up` was.
            var name = options.Monitors == 1 ? "monitor" : $"monitor{n}";
            var monitorArgs = new List<string>
            {
                "monitor", "--host", monitorHost,
                "--port", Text(ports.Heartbeat), "--client-port", Text(ports.Client), "--http-port", Text(ports.Http),
                "--data", Path.Combine(options.DataDirectory, name),
            };
            if (options.Monitors > 1)
            {
                // --peers names every member by its heartbeat address, this one included; Raft is the default coordinator with peers.
                monitorArgs.AddRange(["--raft-port", Text(ports.Raft), "--peers", peers]);
            }

            monitorArgs.AddRange(options.MonitorArguments);
            var process = new ChildProcess(name, monitorArgs, Path.Combine(logs, $"{name}.log"), options.Launcher?.Invoke(name));
            _monitors.Add(new LocalMonitor(n, heartbeats[n - 1], new NodeAddress(monitorHost, ports.Client), ports.Http, process));
        }

        for (var n = 1; n <= options.Servers; n++)
        {
            var port = options.PortOf(n);
            var host = options.HostOf(n);
            var args = new List<string>
            {
                "server", "--host", host, "--port", Text(port),
                "--monitor", string.Join(',', heartbeats),
                "--data", ServerStores.FolderOf(options.DataDirectory, port),
                "--fsync", options.Fsync,
                "--http-port", Text(options.HttpPortOf(n)),
            };
            if (options.StateMachine != BuiltInStateMachine.Messages)
            {
                args.AddRange(["--state-machine", options.StateMachine.FlagName()]);
            }

            args.AddRange(options.ServerArguments);
            _servers.Add(new LocalServer(n, new NodeAddress(host, port), new ChildProcess($"server{n}", args, Path.Combine(logs, $"server{n}-{port}.log"), options.Launcher?.Invoke($"server{n}"))));
        }

        Admin = new UnderstudyClient(new UnderstudyClientOptions { Monitors = MonitorAddresses });
    }

    public LocalClusterOptions Options { get; }

    /// <summary>Monitor 1's process (the only one in a group of one).</summary>
    public ChildProcess Monitor => _monitors[0].Process;

    /// <summary>The monitors, numbered from 1.</summary>
    public IReadOnlyList<LocalMonitor> Monitors => _monitors;

    public IReadOnlyList<LocalServer> Servers => _servers;

    /// <summary>Monitor 1's client API address.</summary>
    public NodeAddress MonitorAddress => _monitors[0].Client;

    /// <summary>Every monitor's client API address, in order (what clients take as --monitor).</summary>
    public IReadOnlyList<NodeAddress> MonitorAddresses => [.. _monitors.Select(m => m.Client)];

    /// <summary>Every monitor's heartbeat address, in order (what servers take as --monitor, monitors as --peers).</summary>
    public IReadOnlyList<NodeAddress> MonitorHeartbeats => [.. _monitors.Select(m => m.Heartbeat)];

    /// <summary>An admin connection to the monitor group (status, events, switchover).</summary>
    public UnderstudyClient Admin { get; }

    /// <summary>Monitor 1's dashboard, or null when its HTTP port is off.</summary>
    public Uri? Dashboard => _monitors[0].Dashboard;

    public LocalMonitor MonitorNumber(int number) =>
        number >= 1 && number <= _monitors.Count ? _monitors[number - 1] : throw new ArgumentOutOfRangeException(nameof(number), $"there is no monitor {number}; monitors are 1 to {_monitors.Count}");

    /// <summary>The monitor whose heartbeat address is <paramref name="heartbeat"/>, if it is one of ours.</summary>
    public LocalMonitor? MonitorAt(NodeAddress heartbeat) => _monitors.FirstOrDefault(m => m.Heartbeat == heartbeat);

    /// <summary>
    /// The active monitor as the answering monitor reports it (the `monitors.active` heartbeat address of its status);
    /// in a group of one, that monitor whenever it answers. Null when no monitor answers or none is active.
    /// </summary>
    public async Task<LocalMonitor?> ActiveMonitorAsync(CancellationToken cancellationToken)
    {
        var group = await GroupAsync(cancellationToken).ConfigureAwait(false);
        return group?.Active is { } active && NodeAddress.TryParse(active, out var address) ? MonitorAt(address) : null;
    }

    /// <summary>The monitor group as the answering monitor sees it; null when no monitor answers.</summary>
    public async Task<MonitorGroupView?> GroupAsync(CancellationToken cancellationToken) => (await ViewAsync(cancellationToken).ConfigureAwait(false)).Group;

    /// <summary>The cluster and the monitor group from one status answer; both null when no monitor answers.</summary>
    public async Task<(ClusterStatus? Status, MonitorGroupView? Group)> ViewAsync(CancellationToken cancellationToken)
    {
        try
        {
            var response = await Admin.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
            var group = MonitorGroupView.FromStatusJson(response.Body.Span) ?? (_monitors.Count == 1 ? MonitorGroupView.Alone(_monitors[0].Heartbeat) : null);
            return (ClusterStatus.FromJson(response.Body.Span), group);
        }
        catch (UnderstudyException)
        {
            return (null, null);
        }
    }

    public void StartAll()
    {
        foreach (var m in _monitors)
        {
            m.Process.Start();
        }

        foreach (var s in _servers)
        {
            s.Process.Start();
        }
    }

    public LocalServer Server(int number) =>
        number >= 1 && number <= _servers.Count ? _servers[number - 1] : throw new ArgumentOutOfRangeException(nameof(number), $"there is no server {number}; servers are 1 to {_servers.Count}");

    public LocalServer? ServerAt(NodeAddress address) => _servers.FirstOrDefault(s => s.Address == address);

    public async Task<ClusterStatus?> StatusAsync(CancellationToken cancellationToken)
    {
        try
        {
            var response = await Admin.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
            return ClusterStatus.FromJson(response.Body.Span);
        }
        catch (UnderstudyException)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<EventView>> EventsAsync(CancellationToken cancellationToken)
    {
        var response = await Admin.AdminAsync(AdminCommand.Events, NodeAddress.None, TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
        return System.Text.Json.JsonSerializer.Deserialize<List<EventView>>(response.Body.Span, ClusterStatus.Json) ?? [];
    }

    /// <summary>
    /// The journal of the active monitor itself. Each monitor keeps its own: the admin connection of a group may have gone
    /// to a follower, whose journal holds only what it saw while it was active, if ever. Falls back to
    /// <see cref="EventsAsync"/> when no monitor is named active.
    /// </summary>
    public async Task<IReadOnlyList<EventView>> ActiveMonitorEventsAsync(CancellationToken cancellationToken)
    {
        if (_monitors.Count == 1 || await ActiveMonitorAsync(cancellationToken).ConfigureAwait(false) is not { } active)
        {
            return await EventsAsync(cancellationToken).ConfigureAwait(false);
        }

        var alone = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [active.Client] });
        await using var scope = alone.ConfigureAwait(false);
        var response = await alone.AdminAsync(AdminCommand.Events, NodeAddress.None, TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
        return System.Text.Json.JsonSerializer.Deserialize<List<EventView>>(response.Body.Span, ClusterStatus.Json) ?? [];
    }

    /// <summary>Polls the monitor until <paramref name="condition"/> holds; null at the deadline.</summary>
    public Task<ClusterStatus?> WaitForAsync(Func<ClusterStatus, bool> condition, TimeSpan timeout, CancellationToken cancellationToken) =>
        Poll.TryForAsync(StatusAsync, s => s is not null && condition(s), timeout, TimeSpan.FromMilliseconds(25), cancellationToken);

    /// <summary>Starts every process and waits until the cluster is healthy; throws, naming the logs, if it is not in time.</summary>
    public async Task<ClusterStatus> StartHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        StartAll();
        return await WaitForHealthyAsync(timeout, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"the cluster did not come up within {timeout.TotalSeconds:0} s; logs in {Path.Combine(Options.DataDirectory, "logs")}");
    }

    /// <summary>Waits for a primary that serves with every running server back in sync.</summary>
    public Task<ClusterStatus?> WaitForHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        WaitForAsync(
            s => s.Phase == "Stable" && s.Primary is not null &&
                 _servers.Where(x => x.Process.Running && !x.Process.Paused).All(x => s.InSync.Contains(x.Address.ToString()) && s.Members.Any(m => m.Address == x.Address.ToString() && m.State == "alive")),
            timeout,
            cancellationToken);

    /// <summary>The server the monitor names primary, if it is one of ours.</summary>
    public async Task<LocalServer?> PrimaryAsync(CancellationToken cancellationToken)
    {
        var status = await StatusAsync(cancellationToken).ConfigureAwait(false);
        return status?.Primary is { } p && NodeAddress.TryParse(p, out var address) ? ServerAt(address) : null;
    }

    public async ValueTask DisposeAsync()
    {
        await Admin.DisposeAsync().ConfigureAwait(false);
        foreach (var s in _servers)
        {
            s.Process.Dispose();
        }

        foreach (var m in _monitors)
        {
            m.Process.Dispose();
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}

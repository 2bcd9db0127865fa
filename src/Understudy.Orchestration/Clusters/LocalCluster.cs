using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Understudy.Client;
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

    public int MonitorPort { get; init; } = 9000;

    public int ClientPort { get; init; } = 9001;

    /// <summary>Monitor dashboard port; servers use their port + 100. 0 turns HTTP off.</summary>
    public int HttpPort { get; init; } = 9080;

    public bool ServerHttp { get; init; } = true;

    public required string DataDirectory { get; init; }

    public string Fsync { get; init; } = "always";

    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Extra flags for every server / the monitor (timings, min-in-sync, log level...).</summary>
    public IReadOnlyList<string> ServerArguments { get; init; } = [];

    public IReadOnlyList<string> MonitorArguments { get; init; } = [];

    /// <summary>Explicit ports per server (overrides BasePort), for clusters on free ports.</summary>
    public IReadOnlyList<int>? ServerPorts { get; init; }

    /// <summary>Per-server hosts (each in its own network namespace, say); null: all on <see cref="Host"/>.</summary>
    public IReadOnlyList<string>? ServerHosts { get; init; }

    /// <summary>The monitor's host when it differs from <see cref="Host"/>.</summary>
    public string? MonitorHost { get; init; }

    /// <summary>A command each process is started through, by name ("monitor", "server1"...): e.g. `ip netns exec NS`.</summary>
    public Func<string, IReadOnlyList<string>>? Launcher { get; init; }

    public int PortOf(int n) => ServerPorts is { } ports ? ports[n - 1] : BasePort - (n - 1);

    /// <summary>Server N's HTTP port (/primary, /replica, /health, /metrics), or 0 when server HTTP is off.</summary>
    public int HttpPortOf(int n) => !ServerHttp ? 0 : ServerHttpPorts is { } ports ? ports[n - 1] : PortOf(n) + 100;

    public string HostOf(int n) => ServerHosts is { } hosts ? hosts[n - 1] : Host;

    public string MonitorHostName => MonitorHost ?? Host;

    /// <summary>Explicit HTTP ports per server (overrides port + 100), for clusters on free ports.</summary>
    public IReadOnlyList<int>? ServerHttpPorts { get; init; }

    /// <summary>A cluster on free ports (benchmarks, chaos, tests), with the monitor's HTTP on a free port if asked.</summary>
    public static LocalClusterOptions OnFreePorts(int servers, string dataDirectory, bool monitorHttp = false)
    {
        var ports = FreePorts(servers + 3);
        return new LocalClusterOptions
        {
            Servers = servers,
            ServerPorts = ports[..servers],
            MonitorPort = ports[servers],
            ClientPort = ports[servers + 1],
            HttpPort = monitorHttp ? ports[servers + 2] : 0,
            ServerHttp = false,
            DataDirectory = dataDirectory,
        };
    }

    /// <summary>The original's ports if they are free, else ports the OS picks.</summary>
    public LocalClusterOptions WithFreePortsIfTaken()
    {
        var wanted = Enumerable.Range(1, Servers).Select(PortOf).Concat([MonitorPort, ClientPort]).Concat(HttpPort > 0 ? [HttpPort] : []);
        if (ServerHttp && HttpPort > 0)
        {
            wanted = wanted.Concat(Enumerable.Range(1, Servers).Select(HttpPortOf));
        }

        if (wanted.All(PortIsFree))
        {
            return this;
        }

        var ports = FreePorts(Servers + 3);
        return this with
        {
            ServerPorts = ports[..Servers],
            MonitorPort = ports[Servers],
            ClientPort = ports[Servers + 1],
            HttpPort = HttpPort > 0 ? ports[Servers + 2] : 0,
            ServerHttp = false,
        };
    }

    /// <summary>True when nothing listens on <paramref name="port"/> of the loopback address (false for a port out of range).</summary>
    public static bool PortIsFree(int port)
    {
        if (port is < 1 or > 65535)
        {
            return false;
        }

        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// Ports free at the time of asking, chosen at random below the kernel's ephemeral range: a port the OS
    /// hands out for port 0 comes from that range, where any outgoing connection may take it before the
    /// process meant to listen on it has started.
    /// </summary>
    public static int[] FreePorts(int count)
    {
        var (low, high) = PortRange();
        var chosen = new List<int>();
        var tries = 0;
        while (chosen.Count < count)
        {
            var port = Random.Shared.Next(low, high);
            if (!chosen.Contains(port) && PortIsFree(port) && (tries++ > 1000 || PortIsFree(port + 100)))
            {
                chosen.Add(port);
            }
        }

        return [.. chosen];
    }

    private static (int Low, int High) PortRange()
    {
        // Linux's ephemeral range starts at 32768 by default; stay below whatever it is set to.
        try
        {
            var text = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
            var ephemeralLow = int.Parse(text[0], CultureInfo.InvariantCulture);
            if (ephemeralLow > 12000)
            {
                return (10000, ephemeralLow - 200);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return (20000, 32000);
    }
}

/// <summary>One server of a local cluster.</summary>
public sealed record LocalServer(int Number, NodeAddress Address, ChildProcess Process);

/// <summary>
/// A monitor and N servers as child processes of this one (they die with it), with the operations the
/// original Main offered: kill, stop, restart, pause, resume; and an admin client to watch it.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<LocalServer> _servers = [];

    public LocalCluster(LocalClusterOptions options)
    {
        Options = options;
        Directory.CreateDirectory(options.DataDirectory);
        var logs = Path.Combine(options.DataDirectory, "logs");
        var monitorArgs = new List<string>
        {
            "monitor", "--host", options.MonitorHostName,
            "--port", Text(options.MonitorPort), "--client-port", Text(options.ClientPort), "--http-port", Text(options.HttpPort),
            "--data", Path.Combine(options.DataDirectory, "monitor"),
        };
        monitorArgs.AddRange(options.MonitorArguments);
        Monitor = new ChildProcess("monitor", monitorArgs, Path.Combine(logs, "monitor.log"), options.Launcher?.Invoke("monitor"));
        for (var n = 1; n <= options.Servers; n++)
        {
            var port = options.PortOf(n);
            var host = options.HostOf(n);
            var args = new List<string>
            {
                "server", "--host", host, "--port", Text(port),
                "--monitor", $"{options.MonitorHostName}:{options.MonitorPort}",
                "--data", Path.Combine(options.DataDirectory, $"server-{port}"),
                "--fsync", options.Fsync,
                "--http-port", Text(options.HttpPortOf(n)),
            };
            args.AddRange(options.ServerArguments);
            _servers.Add(new LocalServer(n, new NodeAddress(host, port), new ChildProcess($"server{n}", args, Path.Combine(logs, $"server{n}-{port}.log"), options.Launcher?.Invoke($"server{n}"))));
        }

        MonitorAddress = new NodeAddress(options.MonitorHostName, options.ClientPort);
        Admin = new UnderstudyClient(new UnderstudyClientOptions { Monitor = MonitorAddress });
    }

    public LocalClusterOptions Options { get; }

    public ChildProcess Monitor { get; }

    public IReadOnlyList<LocalServer> Servers => _servers;

    /// <summary>The monitor's client API address.</summary>
    public NodeAddress MonitorAddress { get; }

    /// <summary>An admin connection to the monitor (status, events, switchover).</summary>
    public UnderstudyClient Admin { get; }

    /// <summary>The monitor's dashboard, or null when its HTTP port is off.</summary>
    public Uri? Dashboard => Options.HttpPort > 0 ? new Uri($"http://{Options.MonitorHostName}:{Options.HttpPort}/") : null;

    public void StartAll()
    {
        Monitor.Start();
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

        Monitor.Dispose();
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}

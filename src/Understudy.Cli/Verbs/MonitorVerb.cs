using System.CommandLine;
using Microsoft.Extensions.Logging;
using Understudy.Cli.Infrastructure;
using Understudy.Core.Monitor;
using Understudy.Hosting;
using Understudy.Protocol;

namespace Understudy.Cli.Verbs;

/// <summary>`understudy monitor`: watches the servers, promotes a backup when the primary fails, tells clients.</summary>
internal static class MonitorVerb
{
    // The protocol's own defaults, so the help and the options cannot disagree.
    private static readonly MonitorOptions Defaults = new();

    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Heartbeat port servers connect to (the original's 9000). Env: UNDERSTUDY_MONITOR__PORT.", DefaultValueFactory = _ => 9000 };
        var clientPort = new Option<int>("--client-port") { Description = "Port clients and operators connect to (the original's 9001). Env: UNDERSTUDY_MONITOR__CLIENTPORT.", DefaultValueFactory = _ => 9001 };
        var host = new Option<string>("--host") { Description = "Address to bind. Env: UNDERSTUDY_MONITOR__HOST.", DefaultValueFactory = _ => "127.0.0.1" };
        var httpPort = new Option<int>("--http-port") { Description = "Port for the dashboard, /cluster, /events, /health, /metrics (0 turns HTTP off). Env: UNDERSTUDY_MONITOR__HTTPPORT.", DefaultValueFactory = _ => 9080 };
        var httpHost = new Option<string>("--http-host") { Description = "Address HTTP binds to (loopback unless you mean it). Env: UNDERSTUDY_MONITOR__HTTPHOST.", DefaultValueFactory = _ => "127.0.0.1" };
        var data = new Option<string?>("--data") { Description = "Folder for the cluster configuration (default .understudy/monitor). Env: UNDERSTUDY_MONITOR__DATA." };
        var heartbeat = new Option<int>("--heartbeat-ms") { Description = "Heartbeat interval servers use. Env: UNDERSTUDY_MONITOR__HEARTBEATMS.", DefaultValueFactory = _ => 50 };
        var failure = new Option<int>("--failure-timeout-ms") { Description = "Silence after which a server is suspected. Env: UNDERSTUDY_MONITOR__FAILURETIMEOUTMS.", DefaultValueFactory = _ => 300 };
        var lease = new Option<int>("--lease-ms") { Description = "Lease granted to the primary; no promotion before it surely expires (unless the primary is known dead). Env: UNDERSTUDY_MONITOR__LEASEMS.", DefaultValueFactory = _ => (int)Defaults.LeaseDuration.TotalMilliseconds };
        var phi = new Option<double?>("--phi") { Description = "Use phi-accrual failure detection with this threshold (e.g. 8) instead of the fixed timeout. Env: UNDERSTUDY_MONITOR__PHI." };
        var keyFile = new Option<string?>("--cluster-key-file") { Description = "File with the shared cluster key (hex). Env: UNDERSTUDY_CLUSTER__KEYFILE or UNDERSTUDY_CLUSTER__KEY." };
        var raftPort = new Option<int?>("--raft-port") { Description = "Port this monitor talks Raft on with its peers (default: --port + 2). Env: UNDERSTUDY_MONITOR__RAFTPORT." };
        var peers = new Option<string?>("--peers") { Description = "Every monitor's heartbeat address, this one included, comma-separated (3 or 5 of them): runs a monitor group. Without it: a group of one keeping the configuration in --data. Env: UNDERSTUDY_MONITOR__PEERS.", HelpName = "host:port,host:port,host:port" };
        var coordinator = new Option<string?>("--coordinator") { Description = "How the group agrees: raft (among the monitors, the default with --peers) or etcd (an external etcd). Env: UNDERSTUDY_MONITOR__COORDINATOR.", HelpName = "raft|etcd" };
        var etcd = new Option<string?>("--etcd-endpoints") { Description = "With --coordinator etcd: the etcd client URLs, comma-separated. Env: UNDERSTUDY_MONITOR__ETCDENDPOINTS.", HelpName = "http://host:port,..." };
        var logLevel = new Option<string>("--log-level") { Description = "trace, debug, info, warning or error.", DefaultValueFactory = _ => "info" };
        var settings = VerbSettings.SettingsFileOption();
        var command = new Command("monitor", "Run the monitor: heartbeats in, failure detection, leases, promotion, and primary changes pushed to clients.")
        {
            port, clientPort, host, httpPort, httpHost, data, heartbeat, failure, lease, phi, keyFile, raftPort, peers, coordinator, etcd, logLevel, settings,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var s = VerbSettings.Load(parse, "Monitor", settings, (port, "Port"), (clientPort, "ClientPort"), (host, "Host"), (httpPort, "HttpPort"), (httpHost, "HttpHost"), (data, "Data"), (heartbeat, "HeartbeatMs"), (failure, "FailureTimeoutMs"), (lease, "LeaseMs"), (phi, "Phi"), (raftPort, "RaftPort"), (peers, "Peers"), (coordinator, "Coordinator"), (etcd, "EtcdEndpoints"), (logLevel, "LogLevel"));
            var bind = s.Text("Host", "127.0.0.1");
            var heartbeatListen = new NodeAddress(bind, s.Int("Port", 9000, "--port", 1, 65535));
            var (group, raftPorts) = Peers(s.Text("Peers", string.Empty));
            var options = new MonitorHostOptions
            {
                HeartbeatListen = heartbeatListen,
                Peers = group,
                PeerRaftPorts = raftPorts,
                RaftListen = s.Has("RaftPort") ? new NodeAddress(bind, s.Int("RaftPort", 0, "--raft-port", 1, 65535)) : NodeAddress.None,
                Coordinator = s.Choice("Coordinator", group.Count > 1 ? CoordinatorKind.Raft : CoordinatorKind.File, "--coordinator"),
                EtcdEndpoints = [.. s.Text("EtcdEndpoints", string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)],
                ClientListen = new NodeAddress(bind, s.Int("ClientPort", 9001, "--client-port", 1, 65535)),
                HttpPort = s.Int("HttpPort", 9080, "--http-port", 0, 65535),
                HttpHost = s.Text("HttpHost", "127.0.0.1"),
                DataDirectory = s.Text("Data", Path.Combine(".understudy", "monitor")),
                ClusterKey = s.ClusterKey(parse.GetValue(keyFile)),
                Protocol = new MonitorOptions
                {
                    HeartbeatInterval = s.Millis("HeartbeatMs", TimeSpan.FromMilliseconds(50), "--heartbeat-ms", 1, 60_000),
                    FailureTimeout = s.Millis("FailureTimeoutMs", TimeSpan.FromMilliseconds(300), "--failure-timeout-ms", 2, 600_000),
                    LeaseDuration = s.Millis("LeaseMs", Defaults.LeaseDuration, "--lease-ms", 3, 600_000),
                    PhiThreshold = s.Has("Phi") ? s.Number("Phi", 8, "--phi", 0.1, 100) : null,
                },
            };
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                // The options' own checks name the flag and the fix: a usage error like any other (exit 2).
                throw new UsageException(e.Message, e);
            }

            UpPreflight.CheckDataFolder(Path.GetFullPath(options.DataDirectory), "--data (or UNDERSTUDY_MONITOR__DATA)");
            return await HostRunner.RunAsync(ConsoleLogging.Parse(s.Text("LogLevel", "info")), "monitor", (loggers, ct) => RunAsync(options, loggers, ct), cancellationToken);
        });
        return command;
    }

    /// <summary>Parses --peers: heartbeat addresses, comma-separated, each optionally with its Raft port (host:port/raftport).</summary>
    private static (List<NodeAddress> Peers, Dictionary<NodeAddress, int> RaftPorts) Peers(string text)
    {
        var peers = new List<NodeAddress>();
        var raftPorts = new Dictionary<NodeAddress, int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (text.Length == 0)
            {
                break;
            }

            var slash = part.IndexOf('/', StringComparison.Ordinal);
            var heartbeat = slash < 0 ? part : part[..slash];
            var raft = 0;
            if (!NodeAddress.TryParse(heartbeat, out var address) ||
                (slash >= 0 && (!int.TryParse(part.AsSpan(slash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out raft) || raft is <= 0 or > 65535)))
            {
                throw new UsageException($"--peers (or UNDERSTUDY_MONITOR__PEERS) has '{part}': expected host:port heartbeat addresses (optionally host:port/raftport), for example 127.0.0.1:9000,127.0.0.1:9010,127.0.0.1:9020");
            }

            peers.Add(address);
            if (slash >= 0)
            {
                raftPorts[address] = raft;
            }
        }

        return (peers, raftPorts);
    }

    private static async Task<int> RunAsync(MonitorHostOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        await using var monitor = await MonitorHost.StartAsync(options, loggers, cancellationToken);
        Microsoft.AspNetCore.Builder.WebApplication? http = null;
        try
        {
            if (options.HttpPort > 0)
            {
                http = await HttpEndpoints.StartMonitorAsync(monitor, new ForwardingLoggerProvider(loggers), cancellationToken);
            }

            var logger = loggers.CreateLogger("Understudy.Monitor");
            LogMessages.MonitorReady(logger, monitor.HeartbeatAddress.ToString(), monitor.ClientAddress.ToString(), options.HttpPort > 0 ? $", dashboard on http://{options.HttpHost}:{options.HttpPort}/" : string.Empty);
            await Task.WhenAny(monitor.Fatal, Task.Delay(Timeout.Infinite, cancellationToken));
            if (monitor.Fatal.IsCompleted)
            {
                LogMessages.Stopping(logger, await monitor.Fatal);
                return 1;
            }
            return 0;
        }
        finally
        {
            if (http is not null)
            {
                await http.DisposeAsync();
            }
        }
    }
}

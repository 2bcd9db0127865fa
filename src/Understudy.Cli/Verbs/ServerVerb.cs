using System.CommandLine;
using Microsoft.Extensions.Logging;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Hosting;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Cli.Verbs;

/// <summary>`understudy server`: one server process (primary or backup, as the monitor decides).</summary>
internal static class ServerVerb
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Port for clients and other servers (the original's 8090, 8089, 8088). Env: UNDERSTUDY_SERVER__PORT.", DefaultValueFactory = _ => 8090 };
        var host = new Option<string>("--host") { Description = "Address to bind (0.0.0.0 for every interface). Env: UNDERSTUDY_SERVER__HOST.", DefaultValueFactory = _ => "127.0.0.1" };
        var advertise = new Option<string?>("--advertise") { Description = "host:port other machines reach this server at (default: --host:--port). Env: UNDERSTUDY_SERVER__ADVERTISE." };
        var monitor = new Option<string>("--monitor") { Description = "Every monitor's heartbeat address, comma-separated (a group of 1, 3 or 5: host:port[,host:port...]); heartbeats go to all. Env: UNDERSTUDY_SERVER__MONITOR.", DefaultValueFactory = _ => "127.0.0.1:9000" };
        var data = new Option<string?>("--data") { Description = "Folder for the log (default .understudy/server-PORT). Env: UNDERSTUDY_SERVER__DATA." };
        var fsync = new Option<string>("--fsync") { Description = "always (default: fsync before acknowledging, group commit), batch (every 10 ms) or never. Env: UNDERSTUDY_SERVER__FSYNC.", DefaultValueFactory = _ => "always" };
        var httpPort = new Option<int?>("--http-port") { Description = "Port for /primary, /replica, /health, /metrics (default PORT+100; 0 turns HTTP off). Env: UNDERSTUDY_SERVER__HTTPPORT." };
        var httpHost = new Option<string>("--http-host") { Description = "Address HTTP binds to. Env: UNDERSTUDY_SERVER__HTTPHOST.", DefaultValueFactory = _ => "127.0.0.1" };
        var minInSync = new Option<int>("--min-in-sync") { Description = "Servers (primary included) that must hold a write before it is acknowledged. Env: UNDERSTUDY_SERVER__MININSYNC.", DefaultValueFactory = _ => 1 };
        var priority = new Option<int?>("--priority") { Description = "Claim to be promoted (default: the port, as in the original). Env: UNDERSTUDY_SERVER__PRIORITY." };
        var heartbeat = new Option<int>("--heartbeat-ms") { Description = "Heartbeat interval. Env: UNDERSTUDY_SERVER__HEARTBEATMS.", DefaultValueFactory = _ => 50 };
        var keyFile = new Option<string?>("--cluster-key-file") { Description = "File with the shared cluster key (hex) authenticating member messages. Env: UNDERSTUDY_CLUSTER__KEYFILE or UNDERSTUDY_CLUSTER__KEY." };
        var snapshotEvery = new Option<string?>("--snapshot-every") { Description = "Take a snapshot every N applied entries, so a restart replays only the log after it (default 100000; 0: never). Env: UNDERSTUDY_SERVER__SNAPSHOTEVERY." };
        var retentionMessages = new Option<string?>("--retention-messages") { Description = "Keep only the newest N messages; older ones are removed and their log compacted (default: keep all). Env: UNDERSTUDY_SERVER__RETENTIONMESSAGES." };
        var retentionBytes = new Option<string?>("--retention-bytes") { Description = "Keep only the newest messages totalling at most B bytes of text (suffix k, m or g for KiB, MiB, GiB; default: keep all). Env: UNDERSTUDY_SERVER__RETENTIONBYTES." };
        var logWindow = new Option<string?>("--log-window") { Description = "Most committed entries kept in memory; older ones are read from disk when needed (default 65536). Env: UNDERSTUDY_SERVER__LOGWINDOW." };
        var retentionAge = new Option<string?>("--retention-age") { Description = "Not available yet: log entries carry no time to age them by." };
        var stateMachine = new Option<string?>("--state-machine") { Description = "The service this server runs: messages (the message store, default) or kv (the key-value store). Every server of a cluster must run the same one: a server refuses to replicate with one running another. Env: UNDERSTUDY_SERVER__STATEMACHINE." };
        var logLevel = new Option<string>("--log-level") { Description = "trace, debug, info, warning or error.", DefaultValueFactory = _ => "info" };
        var settings = VerbSettings.SettingsFileOption();
        var command = new Command("server", "Run one server: it holds the log, serves clients as primary or follows as a hot backup, and heartbeats to the monitor.")
        {
            port, host, advertise, monitor, data, fsync, httpPort, httpHost, minInSync, priority, heartbeat, keyFile, snapshotEvery, logWindow, retentionMessages, retentionBytes, retentionAge, stateMachine, logLevel, settings,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var s = VerbSettings.Load(parse, "Server", settings, (port, "Port"), (host, "Host"), (advertise, "Advertise"), (monitor, "Monitor"), (data, "Data"), (fsync, "Fsync"), (httpPort, "HttpPort"), (httpHost, "HttpHost"), (minInSync, "MinInSync"), (priority, "Priority"), (heartbeat, "HeartbeatMs"), (snapshotEvery, "SnapshotEvery"), (logWindow, "LogWindow"), (retentionMessages, "RetentionMessages"), (retentionBytes, "RetentionBytes"), (retentionAge, "RetentionAge"), (stateMachine, "StateMachine"), (logLevel, "LogLevel"));
            if (s.Has("RetentionAge"))
            {
                throw new UsageException("--retention-age is not available yet: log entries carry no time to age them by; use --retention-messages or --retention-bytes");
            }

            var machine = s.Choice("StateMachine", BuiltInStateMachine.Messages, "--state-machine");
            if (machine != BuiltInStateMachine.Messages && (s.Has("RetentionMessages") || s.Has("RetentionBytes")))
            {
                throw new UsageException($"--retention-messages and --retention-bytes apply to the message store only, not to --state-machine {machine.FlagName()}");
            }

            var listenPort = s.Int("Port", 8090, "--port", 1, 65535);
            var bind = new NodeAddress(s.Text("Host", "127.0.0.1"), listenPort);
            var retention = new MessageRetention
            {
                Messages = s.Has("RetentionMessages") ? Count(s.Text("RetentionMessages", string.Empty), "--retention-messages", 1) : null,
                Bytes = s.Has("RetentionBytes") ? Count(s.Text("RetentionBytes", string.Empty), "--retention-bytes", 1) : null,
            };
            var options = new ServerHostOptions
            {
                Listen = bind,
                Advertise = s.Has("Advertise") ? s.Address("Advertise", bind, "--advertise") : null,
                Monitors = MonitorAddresses.Parse(s.Text("Monitor", "127.0.0.1:9000"), "--monitor (or UNDERSTUDY_SERVER__MONITOR)"),
                DataDirectory = s.Text("Data", Path.Combine(".understudy", $"server-{listenPort}")),
                Fsync = s.Choice("Fsync", FsyncPolicy.Always, "--fsync"),
                HttpPort = s.Int("HttpPort", listenPort + 100 <= 65535 ? listenPort + 100 : 0, "--http-port", 0, 65535),
                HttpHost = s.Text("HttpHost", "127.0.0.1"),
                ClusterKey = s.ClusterKey(parse.GetValue(keyFile)),
                Protocol = new ServerOptions
                {
                    MinInSync = s.Int("MinInSync", 1, "--min-in-sync", 1, 9),
                    Priority = s.Has("Priority") ? s.Int("Priority", 0, "--priority") : null,
                    HeartbeatInterval = s.Millis("HeartbeatMs", TimeSpan.FromMilliseconds(50), "--heartbeat-ms", 1, 60_000),
                    SnapshotEveryEntries = Count(s.Text("SnapshotEvery", "100000"), "--snapshot-every", 0) ?? 100_000,
                    LogWindowEntries = (int)Math.Min(int.MaxValue, Count(s.Text("LogWindow", "65536"), "--log-window", 1) ?? 65_536),
                },
                Retention = retention,
                StateMachine = machine == BuiltInStateMachine.Messages ? null : machine.Factory(retention),
            };
            UpPreflight.CheckDataFolder(Path.GetFullPath(options.DataDirectory), "--data (or UNDERSTUDY_SERVER__DATA)");
            return await HostRunner.RunAsync(ConsoleLogging.Parse(s.Text("LogLevel", "info")), $"server {options.Identity.Port}", (loggers, ct) => RunAsync(options, loggers, ct), cancellationToken);
        });
        return command;
    }

    /// <summary>A whole number of at least <paramref name="min"/>, with an optional k/m/g (binary) suffix; a usage error otherwise.</summary>
    private static long? Count(string raw, string flag, long min)
    {
        var text = raw.Trim().ToLowerInvariant();
        long multiplier = 1;
        if (text.Length > 0 && text[^1] is 'k' or 'm' or 'g')
        {
            multiplier = text[^1] switch { 'k' => 1L << 10, 'm' => 1L << 20, _ => 1L << 30 };
            text = text[..^1];
        }

        if (!long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) || value > long.MaxValue / multiplier || value * multiplier < min)
        {
            throw new UsageException($"{flag} is '{raw}': expected a whole number of at least {min} (optionally with k, m or g)");
        }

        return value * multiplier;
    }

    private static async Task<int> RunAsync(ServerHostOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        await using var server = await ServerHost.StartAsync(options, loggers, cancellationToken);
        Microsoft.AspNetCore.Builder.WebApplication? http = null;
        try
        {
            if (options.HttpPort > 0)
            {
                http = await HttpEndpoints.StartServerAsync(server, new ForwardingLoggerProvider(loggers), cancellationToken);
            }

            var logger = loggers.CreateLogger("Understudy.Server");
            LogMessages.ServerReady(logger, options.Identity.ToString(), options.Listen.ToString(), MonitorAddresses.Format(options.Monitors), options.HttpPort > 0 ? $", HTTP on http://{options.HttpHost}:{options.HttpPort}" : string.Empty);
            await Task.WhenAny(server.Fatal, Task.Delay(Timeout.Infinite, cancellationToken));
            if (server.Fatal.IsCompleted)
            {
                LogMessages.Stopping(logger, await server.Fatal);
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

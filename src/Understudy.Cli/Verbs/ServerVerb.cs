using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Hosting;
using Understudy.Protocol;
using Understudy.Server;
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
        var segmentBytes = new Option<string?>("--segment-bytes") { Description = "Size at which a log segment file is closed and a new one begun; compaction removes whole segments (default 64m; suffix k, m or g). Env: UNDERSTUDY_SERVER__SEGMENTBYTES." };
        var retentionAge = new Option<string?>("--retention-age") { Description = "Keep only messages at most this old, by the log time the primary stamped into them (e.g. 7d, 12h, 30m; units ms, s, m, h, d; default: keep all). Env: UNDERSTUDY_SERVER__RETENTIONAGE." };
        var sessionIdle = new Option<string?>("--session-idle-timeout") { Description = "A client session idle this long (in log time) expires; a retry from it is refused as 'session expired' (e.g. 30m, 1h; units ms, s, m, h, d; default 1h). Env: UNDERSTUDY_SERVER__SESSIONIDLETIMEOUT." };
        var catchUpRate = new Option<string?>("--catch-up-max-mbps") { Description = $"Most MB (MiB) per second the primary sends to backups outside the in-sync set (a restarted, wiped or new server copying its backlog), so clients keep their throughput meanwhile; 0: unlimited (default {ServerOptions.DefaultCatchUpMaxBytesPerSecond >> 20}). Env: UNDERSTUDY_SERVER__CATCHUPMAXMBPS." };
        var inSyncFrames = new Option<string?>("--in-sync-frames") { Description = "Replication frames in flight to an in-sync backup at the log's end, 1..8: writes that arrive while they are on the wire go in the next frame together (default: 8, as for any backup). Env: UNDERSTUDY_SERVER__INSYNCFRAMES." };
        var stateMachine = new Option<string?>("--state-machine") { Description = "The service this server runs: messages (the message store, default) or kv (the key-value store). Every server of a cluster must run the same one: a server refuses to replicate with one running another. Env: UNDERSTUDY_SERVER__STATEMACHINE." };
        var rehearse = new Option<string?>("--rehearse-promotion") { Description = "true (default) or false: at start, run a primary's code once on throwaway nodes in memory, so a first promotion does not wait while the JIT compiles it. Env: UNDERSTUDY_SERVER__REHEARSEPROMOTION." };
        var logLevel = new Option<string>("--log-level") { Description = "trace, debug, info, warning or error.", DefaultValueFactory = _ => "info" };
        var settings = VerbSettings.SettingsFileOption();
        var command = new Command("server", "Run one server: it holds the log, serves clients as primary or follows as a hot backup, and heartbeats to the monitor.")
        {
            port, host, advertise, monitor, data, fsync, httpPort, httpHost, minInSync, priority, heartbeat, keyFile, snapshotEvery, logWindow, segmentBytes, retentionMessages, retentionBytes, retentionAge, sessionIdle, catchUpRate, inSyncFrames, stateMachine, rehearse, logLevel, settings,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var s = VerbSettings.Load(parse, "Server", settings, (port, "Port"), (host, "Host"), (advertise, "Advertise"), (monitor, "Monitor"), (data, "Data"), (fsync, "Fsync"), (httpPort, "HttpPort"), (httpHost, "HttpHost"), (minInSync, "MinInSync"), (priority, "Priority"), (heartbeat, "HeartbeatMs"), (snapshotEvery, "SnapshotEvery"), (logWindow, "LogWindow"), (segmentBytes, "SegmentBytes"), (retentionMessages, "RetentionMessages"), (retentionBytes, "RetentionBytes"), (retentionAge, "RetentionAge"), (sessionIdle, "SessionIdleTimeout"), (catchUpRate, "CatchUpMaxMbps"), (inSyncFrames, "InSyncFrames"), (stateMachine, "StateMachine"), (rehearse, "RehearsePromotion"), (logLevel, "LogLevel"));

            var machine = s.Choice("StateMachine", BuiltInStateMachine.Messages, "--state-machine");
            if (machine != BuiltInStateMachine.Messages && (s.Has("RetentionMessages") || s.Has("RetentionBytes") || s.Has("RetentionAge")))
            {
                throw new UsageException($"--retention-messages, --retention-bytes and --retention-age apply to the message store only, not to --state-machine {machine.FlagName()}");
            }

            var listenPort = s.Int("Port", 8090, "--port", 1, 65535);
            var bind = new NodeAddress(s.Text("Host", "127.0.0.1"), listenPort);
            var retention = new MessageRetention
            {
                Messages = s.Has("RetentionMessages") ? Count(s.Text("RetentionMessages", string.Empty), "--retention-messages", 1) : null,
                Bytes = s.Has("RetentionBytes") ? Count(s.Text("RetentionBytes", string.Empty), "--retention-bytes", 1) : null,
                MaxAge = s.Has("RetentionAge") ? Age(s.Text("RetentionAge", string.Empty), "--retention-age") : null,
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
                SegmentSize = Count(s.Text("SegmentBytes", "64m"), "--segment-bytes", DurableLogOptions.MinSegmentSize) ?? DurableLogOptions.DefaultSegmentSize,
                Protocol = new ServerOptions
                {
                    MinInSync = s.Int("MinInSync", 1, "--min-in-sync", 1, 9),
                    Priority = s.Has("Priority") ? s.Int("Priority", 0, "--priority") : null,
                    HeartbeatInterval = s.Millis("HeartbeatMs", TimeSpan.FromMilliseconds(50), "--heartbeat-ms", 1, 60_000),
                    SnapshotEveryEntries = Count(s.Text("SnapshotEvery", "100000"), "--snapshot-every", 0) ?? 100_000,
                    LogWindowEntries = (int)Math.Min(int.MaxValue, Count(s.Text("LogWindow", "65536"), "--log-window", 1) ?? 65_536),
                    SessionIdleTimeout = Age(s.Text("SessionIdleTimeout", "1h"), "--session-idle-timeout"),
                    CatchUpMaxBytesPerSecond = s.Int("CatchUpMaxMbps", (int)(ServerOptions.DefaultCatchUpMaxBytesPerSecond >> 20), "--catch-up-max-mbps", 0, 1_000_000) * (1L << 20),
                    InSyncFramesInFlight = s.Has("InSyncFrames") ? s.Int("InSyncFrames", 0, "--in-sync-frames", 1, new ServerOptions().MaxInflightFrames) : null,
                },
                Retention = retention,
                RehearsePromotion = s.Switch("RehearsePromotion", true, "--rehearse-promotion"),
                StateMachine = machine == BuiltInStateMachine.Messages ? null : machine.Factory(retention),
            };
            UpPreflight.CheckDataFolder(Path.GetFullPath(options.DataDirectory), "--data (or UNDERSTUDY_SERVER__DATA)");
            // The server library does the work (AddUnderstudyServer: the log, the port, the monitors, HTTP); the verb only
            // turns flags into options. A server that stopped on its own (its disk failed) exits with 1.
            return await HostRunner.RunServicesAsync(
                ConsoleLogging.Parse(s.Text("LogLevel", "info")),
                $"server {options.Identity.Port}",
                services => services.AddUnderstudyServer(_ => options),
                provider => provider.GetRequiredService<UnderstudyServer>().StopReason is null ? 0 : 1,
                cancellationToken);
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

    /// <summary>A positive duration: a whole number with a unit (ms, s, m, h or d), e.g. 30m or 7d; a usage error otherwise.</summary>
    internal static TimeSpan Age(string raw, string flag)
    {
        var text = raw.Trim().ToLowerInvariant();
        var unitAt = 0;
        while (unitAt < text.Length && char.IsAsciiDigit(text[unitAt]))
        {
            unitAt++;
        }

        TimeSpan? unit = text[unitAt..] switch
        {
            "ms" => TimeSpan.FromMilliseconds(1),
            "s" => TimeSpan.FromSeconds(1),
            "m" => TimeSpan.FromMinutes(1),
            "h" => TimeSpan.FromHours(1),
            "d" => TimeSpan.FromDays(1),
            _ => null,
        };
        if (unit is not { } u
            || !long.TryParse(text.AsSpan(0, unitAt), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value < 1
            || value > TimeSpan.MaxValue.Ticks / u.Ticks / 2)
        {
            throw new UsageException($"{flag} is '{raw}': expected a positive whole number with a unit ms, s, m, h or d (e.g. 30m, 7d)");
        }

        return TimeSpan.FromTicks(value * u.Ticks);
    }
}

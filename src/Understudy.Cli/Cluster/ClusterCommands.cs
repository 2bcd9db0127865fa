using System.Globalization;
using System.Text;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Processes;

namespace Understudy.Cli.Cluster;

/// <summary>
/// The original Main's commands, for a local cluster: `stop primary`, `stop backup1`, `stop backup2`,
/// `stop all`, `reboot`, `exit`, plus `kill N`, `restart N`, `pause N`, `resume N`, `status`, `help`.
/// N is a server number (1 is the first port, 8090), or `monitor N` for monitor N of the group (`monitor` alone: 1).
/// </summary>
internal sealed class ClusterCommands(LocalCluster cluster)
{
    public const string Help = """
        stop primary     stop the current primary (SIGTERM; a clean shutdown)
        stop backup1     stop the first backup (highest priority)
        stop backup2     stop the second backup
        stop all         stop every server
        stop N           stop server N (SIGTERM)
        reboot           start every server and monitor that is not running (resume paused ones)
        kill N           kill -9 server N (1 = port 8090, 2 = 8089, 3 = 8088)
        restart N        start server N again (killing it first if it runs)
        pause N          SIGSTOP server N (it freezes; its sockets stay open)
        resume N         SIGCONT server N
        kill monitor N   kill -9 monitor N (1 = port 9000, 2 = 9010, 3 = 9020...; `monitor` alone is 1)
        restart monitor N, pause monitor N, resume monitor N   the same for monitor N
        status           the cluster table
        help             this list
        exit             stop everything and leave
        """;

    /// <summary>Runs one command; returns what to print (empty for exit) and whether to exit.</summary>
    public async Task<(string Output, bool Exit)> RunAsync(string line, CancellationToken cancellationToken)
    {
        var words = line.Trim().ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
        {
            return (string.Empty, false);
        }

        try
        {
            switch (words[0])
            {
                case "help" or "?":
                    return (Help, false);
                case "exit" or "quit":
                    return ("stopping everything", true);
                case "status":
                    return (await StatusTextAsync(cancellationToken), false);
                case "reboot":
                    return (Reboot(), false);
                case "stop" when words.Length == 2:
                    return (await StopAsync(words[1], cancellationToken), false);
                case "kill" or "restart" or "pause" or "resume" when words.Length == 3 && words[1] == "monitor":
                    return (ActOnMonitor(words[0], words[2]), false);
                case "kill" or "restart" or "pause" or "resume" when words.Length == 2:
                    return (Act(words[0], words[1]), false);
                default:
                    return ($"unknown command '{line.Trim()}'; type help", false);
            }
        }
        catch (ArgumentOutOfRangeException e)
        {
            return (e.Message.Split(" (Parameter")[0], false);
        }
    }

    private string Act(string verb, string target)
    {
        if (target == "monitor")
        {
            return ActOnMonitor(verb, "1");
        }

        if (!int.TryParse(target, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return $"'{target}' is not a server number (1 to {cluster.Servers.Count}) or `monitor`";
        }

        var s = cluster.Server(n);
        var name = $"server {n} ({s.Address})";
        return verb switch
        {
            "kill" => Done(s.Process.Running, () => s.Process.Kill(), $"{name} killed (kill -9)", $"{name} is not running"),
            "restart" => Restart(s.Process, name),
            "pause" => s.Process.Pause() ? $"{name} paused (SIGSTOP): it stops heartbeating; the monitor will suspect it" : $"{name} is not running",
            _ => s.Process.Resume() ? $"{name} resumed (SIGCONT)" : $"{name} is not running",
        };
    }

    private string ActOnMonitor(string verb, string number)
    {
        if (!int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return $"'{number}' is not a monitor number (1 to {cluster.Monitors.Count})";
        }

        var monitor = cluster.MonitorNumber(n);
        var m = monitor.Process;
        var name = cluster.Monitors.Count == 1 ? "monitor" : $"monitor {n} ({monitor.Heartbeat})";
        return verb switch
        {
            "kill" => Done(m.Running, () => m.Kill(), $"{name} killed (kill -9)", $"{name} is not running"),
            "restart" => Restart(m, name),
            "pause" => m.Pause() ? $"{name} paused (SIGSTOP): it freezes with its sockets open" : $"{name} is not running",
            _ => m.Resume() ? $"{name} resumed (SIGCONT)" : $"{name} is not running",
        };
    }

    private static string Restart(ChildProcess process, string name)
    {
        if (process.Running)
        {
            process.Kill();
            process.WaitForExit(TimeSpan.FromSeconds(5));
        }

        process.Start();
        return $"{name} started (pid {process.Pid})";
    }

    private static string Done(bool running, Action act, string done, string notRunning)
    {
        if (!running)
        {
            return notRunning;
        }

        act();
        return done;
    }

    private async Task<string> StopAsync(string which, CancellationToken cancellationToken)
    {
        if (which == "all")
        {
            var sb = new StringBuilder();
            foreach (var s in cluster.Servers.Where(s => s.Process.Running))
            {
                s.Process.Stop(TimeSpan.FromSeconds(5));
                sb.AppendLine(CultureInfo.InvariantCulture, $"server {s.Number} ({s.Address}) stopped");
            }

            return sb.Length == 0 ? "no server is running" : sb.ToString().TrimEnd();
        }

        if (int.TryParse(which, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            var s = cluster.Server(number);
            if (!s.Process.Running)
            {
                return $"server {number} is not running";
            }

            s.Process.Stop(TimeSpan.FromSeconds(5));
            return $"server {number} ({s.Address}) stopped";
        }

        var status = await cluster.StatusAsync(cancellationToken);
        if (status is null)
        {
            return "the monitor does not answer; use `stop all` or `kill N`";
        }

        var primary = status.Primary;
        var backups = status.Members.Where(m => m.Role == "backup").OrderByDescending(m => m.Priority).Select(m => m.Address).ToList();
        string? address = which switch
        {
            "primary" => primary,
            "backup1" => backups.ElementAtOrDefault(0),
            "backup2" => backups.ElementAtOrDefault(1),
            _ => throw new ArgumentOutOfRangeException(nameof(which), $"stop what? primary, backup1, backup2 or all (not '{which}')"),
        };
        var server = address is null ? null : cluster.Servers.FirstOrDefault(s => s.Address.ToString() == address);
        if (server is null || !server.Process.Running)
        {
            return $"there is no running {which}";
        }

        server.Process.Stop(TimeSpan.FromSeconds(5));
        return $"{which} stopped: server {server.Number} ({server.Address})";
    }

    private string Reboot()
    {
        var sb = new StringBuilder();
        foreach (var m in cluster.Monitors)
        {
            var name = cluster.Monitors.Count == 1 ? "monitor" : $"monitor {m.Number}";
            if (m.Process.Paused)
            {
                m.Process.Resume();
                sb.AppendLine(CultureInfo.InvariantCulture, $"{name} resumed");
            }
            else if (!m.Process.Running)
            {
                m.Process.Start();
                sb.AppendLine(CultureInfo.InvariantCulture, $"{name} started");
            }
        }

        foreach (var s in cluster.Servers)
        {
            if (s.Process.Paused)
            {
                s.Process.Resume();
                sb.AppendLine(CultureInfo.InvariantCulture, $"server {s.Number} resumed");
            }
            else if (!s.Process.Running)
            {
                s.Process.Start();
                sb.AppendLine(CultureInfo.InvariantCulture, $"server {s.Number} ({s.Address}) started");
            }
        }

        return sb.Length == 0 ? "everything is already running" : sb.ToString().TrimEnd();
    }

    private async Task<string> StatusTextAsync(CancellationToken cancellationToken)
    {
        var status = await cluster.StatusAsync(cancellationToken);
        if (status is null)
        {
            return "the monitor does not answer (is it running? `restart monitor`)";
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"epoch {status.Epoch} · phase {status.Phase} · primary {status.Primary ?? "none"} · in sync [{string.Join(", ", status.InSync)}]");
        sb.AppendLine("  #  member            role     state      in sync  log end  lag  heartbeat  pid");
        foreach (var s in cluster.Servers)
        {
            var m = status.Members.FirstOrDefault(x => x.Address == s.Address.ToString());
            var paused = s.Process.Paused ? " (paused)" : string.Empty;
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {s.Number}  {s.Address,-16}  {m?.Role ?? "down",-7}  {(m?.State ?? "unknown") + paused,-9}  {(m?.InSync == true ? "yes" : "no"),-7}  {m?.LogEnd ?? 0,7}  {m?.Lag ?? 0,3}  {(m?.HeartbeatAgeMs is { } a ? $"{a:0} ms" : "never"),9}  {(s.Process.Running ? s.Process.Pid.ToString(CultureInfo.InvariantCulture) : "-")}");
        }

        return sb.ToString().TrimEnd();
    }
}

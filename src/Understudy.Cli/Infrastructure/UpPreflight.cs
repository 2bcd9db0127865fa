using System.Globalization;
using Understudy.Orchestration.Clusters;

namespace Understudy.Cli.Infrastructure;

/// <summary>
/// What `up` checks before it starts any child: every value it will pass on (a server would otherwise exit with
/// an error only its log shows), and every port it will use. Nothing is started or written before these pass.
/// </summary>
internal static class UpPreflight
{
    public static readonly string[] FsyncValues = ["always", "batch", "never"];

    /// <summary>One port `up` will listen on, who uses it and the flag that chooses it.</summary>
    internal readonly record struct PlannedPort(int Port, string Who, string Flag);

    /// <summary>Checks the values; throws a <see cref="UsageException"/> naming the flag and what to give instead.</summary>
    public static void CheckValues(int servers, int monitors, int basePort, int monitorPort, int clientPort, int httpPort, string fsync, int minInSync, string dataFolder)
    {
        if (monitors is not (1 or 3 or 5))
        {
            throw new UsageException($"--monitors is {monitors}: expected 1, 3 or 5 (a group needs a majority alive, so an even number adds nothing)");
        }

        if (servers is < 1 or > 9)
        {
            throw new UsageException($"--servers is {servers}: expected 1 to 9");
        }

        if (!FsyncValues.Contains(fsync))
        {
            throw new UsageException($"--fsync is '{fsync}': expected one of {string.Join(", ", FsyncValues)}");
        }

        if (minInSync < 1 || minInSync > servers)
        {
            throw new UsageException($"--min-in-sync is {minInSync} with {servers} server(s): every write would wait for servers that do not exist; use 1 to {servers} (or more --servers)");
        }

        if (basePort - (servers - 1) < 1 || basePort + 100 > 65535)
        {
            throw new UsageException($"--base-port is {basePort}: server N listens on base-port - (N-1) and its HTTP on that + 100, so with {servers} server(s) use {servers} to 65435");
        }

        // Monitor N takes monitor 1's ports + 10·(N-1) (the Raft port + 2 above its heartbeats) and the dashboard + N-1.
        var spread = 10 * (monitors - 1);
        Port(monitorPort, "--monitor-port", allowZero: false, top: 65535 - spread - (monitors > 1 ? 2 : 0));
        Port(clientPort, "--client-port", allowZero: false, top: 65535 - spread);
        Port(httpPort, "--http-port", allowZero: true, top: 65535 - (monitors - 1));

        var planned = Plan(servers, monitors, basePort, monitorPort, clientPort, httpPort);
        foreach (var clash in planned.GroupBy(p => p.Port).Where(g => g.Count() > 1))
        {
            var who = clash.ToList();
            throw new UsageException($"port {clash.Key} is planned twice, for {who[0].Who} and {who[1].Who}: give {who[1].Flag} another value");
        }

        CheckDataFolder(dataFolder);
    }

    /// <summary>Every port `up` will listen on: servers, their HTTP ports, each monitor's ports (Raft in a group) and dashboard.</summary>
    public static IReadOnlyList<PlannedPort> Plan(int servers, int monitors, int basePort, int monitorPort, int clientPort, int httpPort)
    {
        var ports = new List<PlannedPort>();
        for (var n = 1; n <= servers; n++)
        {
            ports.Add(new PlannedPort(basePort - (n - 1), $"server {n}", "--base-port"));
        }

        var shape = new LocalClusterOptions { Monitors = monitors, MonitorPort = monitorPort, ClientPort = clientPort, HttpPort = httpPort, DataDirectory = "." };
        for (var n = 1; n <= monitors; n++)
        {
            var m = shape.MonitorPortsOf(n);
            var who = monitors == 1 ? "the monitor" : $"monitor {n}";
            ports.Add(new PlannedPort(m.Heartbeat, $"{who}'s heartbeats", "--monitor-port"));
            ports.Add(new PlannedPort(m.Client, $"{who}'s client API", "--client-port"));
            if (monitors > 1)
            {
                ports.Add(new PlannedPort(m.Raft, $"{who}'s Raft", "--monitor-port"));
            }

            if (m.Http > 0)
            {
                ports.Add(new PlannedPort(m.Http, monitors == 1 ? "the dashboard" : $"monitor {n}'s dashboard", "--http-port"));
            }
        }

        for (var n = 1; n <= servers; n++)
        {
            ports.Add(new PlannedPort(basePort - (n - 1) + 100, $"server {n}'s HTTP", "--base-port"));
        }

        return ports;
    }

    /// <summary>Refuses (a <see cref="CliFailure"/>) when a planned port is taken, naming it and what to do.</summary>
    public static void CheckPortsFree(IReadOnlyList<PlannedPort> ports)
    {
        foreach (var p in ports)
        {
            if (!LocalClusterOptions.PortIsFree(p.Port))
            {
                var off = p.Flag == "--http-port" ? " (0 turns the dashboard off)" : string.Empty;
                throw new CliFailure($"port {p.Port} ({p.Who}) is in use: stop what holds it (`ss -ltnp 'sport = :{p.Port}'` shows it; another `up`?), or choose another with {p.Flag}{off}");
            }
        }
    }

    /// <summary>The data folder must be a folder or creatable as one: a file on its path is a mistake in --data.</summary>
    public static void CheckDataFolder(string folder, string flag = "--data")
    {
        if (File.Exists(folder))
        {
            throw new UsageException($"{flag} '{folder}' is a file, not a folder: choose a folder (it is created if missing)");
        }

        for (var parent = Path.GetDirectoryName(folder); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
        {
            if (File.Exists(parent))
            {
                throw new UsageException($"{flag} '{folder}' cannot be created: '{parent}' is a file, not a folder; choose another data folder");
            }

            if (Directory.Exists(parent))
            {
                return;
            }
        }
    }

    private static void Port(int port, string flag, bool allowZero, int top = 65535)
    {
        if (port < (allowZero ? 0 : 1) || port > top)
        {
            var why = top < 65535 ? " (the other monitors take the ports above it)" : string.Empty;
            throw new UsageException($"{flag} is {port.ToString(CultureInfo.InvariantCulture)}: expected a port from {(allowZero ? "0 (off)" : "1")} to {top.ToString(CultureInfo.InvariantCulture)}{why}");
        }
    }
}

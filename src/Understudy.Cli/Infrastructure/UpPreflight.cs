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
    public static void CheckValues(int servers, int basePort, int monitorPort, int clientPort, int httpPort, string fsync, int minInSync, string dataFolder)
    {
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

        Port(monitorPort, "--monitor-port", allowZero: false);
        Port(clientPort, "--client-port", allowZero: false);
        Port(httpPort, "--http-port", allowZero: true);

        var planned = Plan(servers, basePort, monitorPort, clientPort, httpPort);
        foreach (var clash in planned.GroupBy(p => p.Port).Where(g => g.Count() > 1))
        {
            var who = clash.ToList();
            throw new UsageException($"port {clash.Key} is planned twice, for {who[0].Who} and {who[1].Who}: give {who[1].Flag} another value");
        }

        CheckDataFolder(dataFolder);
    }

    /// <summary>Every port `up` will listen on: servers, their HTTP ports, the monitor's two ports, the dashboard.</summary>
    public static IReadOnlyList<PlannedPort> Plan(int servers, int basePort, int monitorPort, int clientPort, int httpPort)
    {
        var ports = new List<PlannedPort>();
        for (var n = 1; n <= servers; n++)
        {
            ports.Add(new PlannedPort(basePort - (n - 1), $"server {n}", "--base-port"));
        }

        ports.Add(new PlannedPort(monitorPort, "the monitor's heartbeats", "--monitor-port"));
        ports.Add(new PlannedPort(clientPort, "the monitor's client API", "--client-port"));
        if (httpPort > 0)
        {
            ports.Add(new PlannedPort(httpPort, "the dashboard", "--http-port"));
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

    private static void Port(int port, string flag, bool allowZero)
    {
        if (port < (allowZero ? 0 : 1) || port > 65535)
        {
            throw new UsageException($"{flag} is {port.ToString(CultureInfo.InvariantCulture)}: expected a port from {(allowZero ? "0 (off)" : "1")} to 65535");
        }
    }
}

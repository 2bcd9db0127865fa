using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Understudy.Cli.Infrastructure;
using Understudy.Protocol;

namespace Understudy.Cli.Cluster;

/// <summary>
/// What a running `understudy up` wrote to DATA/up.json: its pid, the monitor's ports and the servers by
/// number. Operator verbs use it to turn `N` into an address and to find the monitor without flags.
/// </summary>
internal sealed record UpInfo(int Pid, int ClientPort, int HttpPort, IReadOnlyList<(int Number, NodeAddress Address)> Servers)
{
    public const string FileName = "up.json";

    /// <summary>Monitor 1's client API of that cluster (`up` always binds 127.0.0.1).</summary>
    public NodeAddress Monitor => new("127.0.0.1", ClientPort);

    /// <summary>Every monitor's client API, in order (monitor 1 alone when the file predates groups).</summary>
    public IReadOnlyList<NodeAddress> Monitors { get; init; } = [];

    /// <summary>What operator verbs connect to: every monitor of the group.</summary>
    public IReadOnlyList<NodeAddress> MonitorsOrFirst => Monitors.Count > 0 ? Monitors : [Monitor];

    /// <summary>Reads DATA/up.json; null when there is none, it is unreadable, or its `up` is no longer running.</summary>
    public static UpInfo? LoadIfRunning(string folder)
    {
        var path = Path.Combine(Path.GetFullPath(folder), FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        UpInfo info;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            var monitor = root.GetProperty("monitor");
            var servers = root.GetProperty("servers").EnumerateArray()
                .Select(s => (s.GetProperty("number").GetInt32(), NodeAddress.Parse(s.GetProperty("address").GetString() ?? string.Empty)))
                .ToList();
            var group = root.TryGetProperty("monitors", out var list) && list.ValueKind == JsonValueKind.Array
                ? list.EnumerateArray().Select(m => NodeAddress.Parse(m.GetProperty("client").GetString() ?? string.Empty)).ToList()
                : [];
            info = new UpInfo(root.GetProperty("pid").GetInt32(), monitor.GetProperty("clientPort").GetInt32(), monitor.GetProperty("httpPort").GetInt32(), servers) { Monitors = group };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or IOException)
        {
            return null;
        }

        return IsRunning(info.Pid) ? info : null;
    }

    /// <summary>
    /// Turns `N` (a server number, as `up` numbers them: 1 is the first port) or `host:port` into an address.
    /// </summary>
    public static NodeAddress ResolveServer(string text, UpInfo? up, string flag, string dataFolder)
    {
        if (NodeAddress.TryParse(text, out var address))
        {
            return address;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            throw new UsageException($"{flag} is '{text}': expected a server number N (as `up` numbers them) or host:port, for example 127.0.0.1:8089");
        }

        if (up is null)
        {
            throw new UsageException($"{flag} {number}: server numbers come from a running `understudy up` (none with data folder {Path.GetFullPath(dataFolder)}); pass host:port instead, or --data of the running `up`");
        }

        foreach (var (n, a) in up.Servers)
        {
            if (n == number)
            {
                return a;
            }
        }

        throw new UsageException($"{flag} {number}: the running `up` has servers 1 to {up.Servers.Count}");
    }

    /// <summary>The number `up` gave this address, for messages ("server 2 (127.0.0.1:8089)").</summary>
    public static string Describe(string? address, UpInfo? up)
    {
        if (address is null)
        {
            return "none";
        }

        if (up is not null && NodeAddress.TryParse(address, out var a))
        {
            foreach (var (n, s) in up.Servers)
            {
                if (s == a)
                {
                    return $"server {n} ({address})";
                }
            }
        }

        return address;
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}

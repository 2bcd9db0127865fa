using System.Globalization;
using System.Text.RegularExpressions;
using Understudy.Orchestration.Processes;

namespace Understudy.Orchestration.Chaos;

/// <summary>
/// A private network for one chaos run: every process in its own Linux network namespace with its own
/// address on a bridge, reachable from this process (the clients). A partition is made of blackhole routes
/// inside the namespaces, so a server can lose the monitor and the other servers while its clients still
/// reach it. Needs root and iproute2; everything is removed on dispose, and namespaces left by a run that
/// was killed are removed by the next one.
/// </summary>
public sealed partial class NamespaceNetwork : IDisposable
{
    private readonly string _prefix;
    private readonly int _subnet;
    private readonly Dictionary<string, (string Namespace, string Address)> _nodes = [];
    private readonly HashSet<(string From, string To)> _blackholes = [];
    private readonly Lock _disposeLock = new();
    private bool _disposed;

    private NamespaceNetwork(string prefix, int subnet)
    {
        _prefix = prefix;
        _subnet = subnet;
    }

    public string Bridge => _prefix + "b";

    /// <summary>Why partitions cannot run here, or null when they can.</summary>
    public static string? Unsupported()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the partition scenario needs Linux network namespaces";
        }

        if (GetUid() != 0)
        {
            return "the partition scenario needs root (to create network namespaces): run it with sudo";
        }

        if (Run("ip", "-V") is not (0, _))
        {
            return "the partition scenario needs iproute2 (`ip`): apt-get install iproute2";
        }

        return null;
    }

    /// <summary>Creates namespaces for the named nodes ("monitor", "server1", ...), each with its own address.</summary>
    public static NamespaceNetwork Create(IEnumerable<string> nodes)
    {
        CleanLeftovers();
        var pid = Environment.ProcessId;
        var network = new NamespaceNetwork($"us{pid}", 1 + (pid % 250));
        try
        {
            network.Setup(nodes.ToList());
            return network;
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    public string AddressOf(string node) => _nodes[node].Address;

    /// <summary>The command that runs a process inside the node's namespace.</summary>
    public IReadOnlyList<string> Launcher(string node) => ["ip", "netns", "exec", _nodes[node].Namespace];

    /// <summary>Cuts <paramref name="node"/> off from every one of <paramref name="others"/>, both ways.</summary>
    public void Cut(string node, IEnumerable<string> others)
    {
        foreach (var other in others.Where(o => o != node))
        {
            Blackhole(node, other);
            Blackhole(other, node);
        }
    }

    public void HealAll()
    {
        foreach (var (from, to) in _blackholes.ToList())
        {
            Must("ip", "netns", "exec", _nodes[from].Namespace, "ip", "route", "del", "blackhole", _nodes[to].Address + "/32");
            _blackholes.Remove((from, to));
        }
    }

    public bool HasCuts => _blackholes.Count > 0;

    private void Blackhole(string from, string to)
    {
        if (_blackholes.Add((from, to)))
        {
            Must("ip", "netns", "exec", _nodes[from].Namespace, "ip", "route", "add", "blackhole", _nodes[to].Address + "/32");
        }
    }

    private void Setup(List<string> nodes)
    {
        Must("ip", "link", "add", Bridge, "type", "bridge");
        Must("ip", "addr", "add", $"10.77.{_subnet}.1/24", "dev", Bridge);
        Must("ip", "link", "set", Bridge, "up");
        for (var i = 0; i < nodes.Count; i++)
        {
            var ns = $"{_prefix}n{i}";
            var host = $"{_prefix}v{i}";
            var peer = $"{_prefix}p{i}";
            var address = $"10.77.{_subnet}.{10 + i}";
            Must("ip", "netns", "add", ns);
            _nodes[nodes[i]] = (ns, address);
            Must("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up");
            Must("ip", "link", "add", host, "type", "veth", "peer", "name", peer);
            Must("ip", "link", "set", peer, "netns", ns);
            Must("ip", "link", "set", host, "master", Bridge);
            Must("ip", "link", "set", host, "up");
            Must("ip", "netns", "exec", ns, "ip", "addr", "add", address + "/24", "dev", peer);
            Must("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up");
        }
    }

    /// <summary>
    /// Removes the namespaces and the bridge. Idempotent and safe from any thread: a signal handler may call it
    /// while the run is still going, and the run's own disposal calls it again.
    /// </summary>
    public void Dispose()
    {
        // A lock, not a flag: a second caller (the process exit after a signal handler, or the run's own disposal)
        // must wait until the first has finished, or the process could exit with the clean-up half done.
        lock (_disposeLock)
        {
            if (_disposed)
            {
                return;
            }

            var namespaces = _nodes.Values.Select(n => n.Namespace).ToList();
            for (var i = 0; i < namespaces.Count; i++)
            {
                // The host ends of the veth pairs first: deleting one deletes its peer at once, whereas a namespace
                // whose processes were just killed (or still hold sockets) lingers, and its veth with it.
                Run("ip", "link", "del", $"{_prefix}v{i}");
                Run("ip", "netns", "del", namespaces[i]);
            }

            Run("ip", "link", "del", Bridge);
            _disposed = true;
        }
    }

    /// <summary>Removes namespaces and bridges of earlier runs whose process no longer exists.</summary>
    private static void CleanLeftovers()
    {
        var (code, output) = Run("ip", "netns", "list");
        if (code != 0)
        {
            return;
        }

        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var match = LeftoverName().Match(line);
            if (match.Success && int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var owner) && !Processes.Posix.Exists(owner))
            {
                Run("ip", "netns", "del", match.Value);
                Run("ip", "link", "del", $"us{owner}b");
            }
        }
    }

    private static void Must(params string[] command)
    {
        var (code, output) = Run(command);
        if (code != 0)
        {
            throw new InvalidOperationException($"`{string.Join(' ', command)}` failed ({code}): {output.Trim()}");
        }
    }

    private static (int Code, string Output) Run(params string[] command) => ExternalCommand.Run(command);

    private static int GetUid()
    {
        var (code, output) = Run("id", "-u");
        return code == 0 && int.TryParse(output.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var uid) ? uid : -1;
    }

    [GeneratedRegex(@"^us(\d+)n\d+")]
    private static partial Regex LeftoverName();
}

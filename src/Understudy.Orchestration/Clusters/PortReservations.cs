using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Understudy.Orchestration.Clusters;

/// <summary>
/// The ports this process hands to the children it starts (servers, monitors, their HTTP). A port is chosen because
/// nothing listens on it now, but the child that will listen on it starts later: until then a second choice finds the
/// same number free just as well, and two children get it (a soak run once gave server 1 the monitor's port as its HTTP
/// port: two choices, one for the cluster, one for the HTTP ports). So every number handed out is remembered, and none
/// is handed out again until <see cref="Memory"/> others have been: every port of a run (a test, a bench, a chaos run)
/// is distinct from every other port any run of this process was given, however many choices it took them in.
/// </summary>
public static class PortReservations
{
    /// <summary>How many of the latest numbers handed out are never handed out again: far more than any run uses, far fewer than the range holds.</summary>
    public const int Memory = 8192;

    private static readonly Lock Gate = new();
    private static readonly HashSet<int> Handed = [];
    private static readonly Queue<int> Order = new();
    private static readonly (int Low, int High) Range = PortRange();

    /// <summary>
    /// <paramref name="count"/> distinct ports, free at the time of asking and never handed out before (see above),
    /// chosen at random below the kernel's ephemeral range: a port the OS hands out for port 0 comes from that range,
    /// where any outgoing connection may take it before the process meant to listen on it has started. Each port + 100
    /// is free too when one can be found (layouts where a server's HTTP port is its port + 100).
    /// </summary>
    public static int[] Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        lock (Gate)
        {
            var chosen = new int[count];
            var tries = 0;
            for (var i = 0; i < count;)
            {
                var port = Random.Shared.Next(Range.Low, Range.High);
                if (!Handed.Contains(port) && IsFree(port) && (tries++ > 1000 || IsFree(port + 100)))
                {
                    Remember(port);
                    chosen[i++] = port;
                }
            }

            return chosen;
        }
    }

    /// <summary>
    /// Hands out exactly <paramref name="ports"/> (a layout derived from a port <see cref="Take"/> gave, say a base port's
    /// neighbours) when every one is free and none was handed out before; false, and nothing handed out, otherwise.
    /// </summary>
    public static bool TryTake(IReadOnlyCollection<int> ports)
    {
        lock (Gate)
        {
            if (ports.Distinct().Count() != ports.Count || !ports.All(p => !Handed.Contains(p) && IsFree(p)))
            {
                return false;
            }

            foreach (var port in ports)
            {
                Remember(port);
            }

            return true;
        }
    }

    /// <summary>
    /// A base port for the layout `up` uses (<c>LocalClusterOptions.BasePort</c>): server N on base - (N-1), its
    /// HTTP on that + 100; every one of those ports reserved together.
    /// </summary>
    public static int TakeBase(int servers)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(servers, 1);
        return TakeWith(basePort => Enumerable.Range(0, servers).SelectMany(n => new[] { basePort - n, basePort - n + 100 }));
    }

    /// <summary>
    /// A port and the ports a layout derives from it (<paramref name="derived"/>: say a monitor group's ports spaced by
    /// 10 above monitor 1's), all free and reserved together; returns the first.
    /// </summary>
    public static int TakeWith(Func<int, IEnumerable<int>> derived)
    {
        while (true)
        {
            var first = Take(1)[0];
            if (TryTake([.. derived(first).Where(p => p != first)]))
            {
                return first;
            }
        }
    }

    /// <summary>True when nothing listens on <paramref name="port"/> of the loopback address (false for a port out of range).</summary>
    public static bool IsFree(int port)
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

    private static void Remember(int port)
    {
        Handed.Add(port);
        Order.Enqueue(port);
        if (Order.Count > Memory)
        {
            Handed.Remove(Order.Dequeue());
        }
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

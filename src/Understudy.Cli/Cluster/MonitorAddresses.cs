using Understudy.Cli.Infrastructure;
using Understudy.Protocol;

namespace Understudy.Cli.Cluster;

/// <summary>
/// The `--monitor a,b,c` list every verb that talks to a monitor group takes: servers name each monitor's heartbeat
/// address, clients and operators each monitor's client address. One address is a group of one.
/// </summary>
internal static class MonitorAddresses
{
    /// <summary>
    /// Parses a comma-separated list of host:port; <paramref name="where"/> names the flag (and variable) in the one-line
    /// error a wrong entry, an empty list or a repeated address gets.
    /// </summary>
    public static IReadOnlyList<NodeAddress> Parse(string text, string where)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var addresses = new List<NodeAddress>(parts.Length);
        foreach (var part in parts)
        {
            if (!NodeAddress.TryParse(part, out var address))
            {
                var shown = part.Length == 0 ? "an empty entry" : $"'{part}'";
                throw new UsageException($"{where} is '{text}': {shown} is not host:port; give one address or a comma-separated list, for example 127.0.0.1:9000,127.0.0.1:9010,127.0.0.1:9020");
            }

            if (addresses.Contains(address))
            {
                throw new UsageException($"{where} is '{text}': {address} is listed twice; list each monitor once");
            }

            addresses.Add(address);
        }

        if (addresses.Count > 5)
        {
            throw new UsageException($"{where} lists {addresses.Count} monitors: a group has at most 5");
        }

        return addresses;
    }

    /// <summary>The list as the flag takes it.</summary>
    public static string Format(IEnumerable<NodeAddress> addresses) => string.Join(',', addresses);
}

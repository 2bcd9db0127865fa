namespace Understudy.Orchestration.Bench;

/// <summary>
/// Issue 9's "the last quarter of the run grows RSS by less than 5 %", read from a soak run whose own last quarter holds
/// the wipe: judged only on the servers that were neither killed nor started in that window (the primary, and the
/// backup restarted earlier), as the mean RSS of the window's last tenth against that of its first tenth.
/// </summary>
public static class SoakGrowth
{
    /// <summary>The share of the window at each end whose samples are averaged.</summary>
    public const double EdgeShare = 0.10;

    /// <summary>
    /// RSS growth over [<paramref name="from"/>, <paramref name="to"/>] (seconds since load began) of each server with
    /// samples at both ends and no event naming it inside the window; servers killed or started in it are left out.
    /// </summary>
    public static Dictionary<string, SoakRssGrowth> Over(IReadOnlyList<SoakSample> samples, IReadOnlyList<SoakEvent> events, double from, double to)
    {
        ArgumentNullException.ThrowIfNull(samples);
        ArgumentNullException.ThrowIfNull(events);
        var growth = new Dictionary<string, SoakRssGrowth>(StringComparer.Ordinal);
        if (!(to > from))
        {
            return growth;
        }

        var edge = (to - from) * EdgeShare;
        foreach (var server in samples.Select(s => s.Server).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            // "wiped backup: server3 killed", "... started", "... in sync": any of them inside the window disqualifies.
            if (events.Any(e => e.Seconds >= from && e.Seconds <= to && NamesServer(e.What, server)))
            {
                continue;
            }

            var first = samples.Where(s => s.Server == server && s.Seconds >= from && s.Seconds <= from + edge).Select(s => s.RssMb).ToList();
            var last = samples.Where(s => s.Server == server && s.Seconds >= to - edge && s.Seconds <= to).Select(s => s.RssMb).ToList();
            if (first.Count == 0 || last.Count == 0)
            {
                continue;
            }

            var start = first.Average();
            var end = last.Average();
            growth[server] = new SoakRssGrowth(Math.Round(from, 2), Math.Round(to, 2), Math.Round(start, 1), Math.Round(end, 1), Math.Round((end / start - 1) * 100, 2));
        }

        return growth;
    }

    private static bool NamesServer(string what, string server)
    {
        var at = what.IndexOf(server, StringComparison.Ordinal);

        // "server1" must not match "server10".
        return at >= 0 && (at + server.Length == what.Length || !char.IsAsciiDigit(what[at + server.Length]));
    }
}

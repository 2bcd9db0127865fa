using System.Globalization;
using System.Text;
using Understudy.Orchestration.Clusters;
using Understudy.Hosting;
using Understudy.Protocol;

namespace Understudy.Cli.Infrastructure;

/// <summary>
/// The `status` table at `up`'s prompt: columns sized to their widest cell (a `suspected (paused)` state keeps
/// the row aligned), and a server whose process is not running shows no pid and no in-sync claim.
/// </summary>
internal static class UpTable
{
    private static readonly string[] Header = ["#", "member", "role", "state", "in sync", "log end", "lag", "heartbeat", "pid"];

    private static readonly string[] MonitorHeader = ["#", "heartbeat", "client", "role", "state", "pid"];

    private static readonly bool[] Numeric = [false, false, false, false, false, true, true, true, false];

    public static string Render(LocalCluster cluster, ClusterStatus? status, MonitorGroupView? group = null)
    {
        if (status is null)
        {
            return "the monitor does not answer (is it running? `restart monitor`)";
        }

        var rows = new List<string[]> { Header };
        foreach (var s in cluster.Servers)
        {
            var m = status.Members.FirstOrDefault(x => x.Address == s.Address.ToString());
            var running = s.Process.Running;
            var state = (m?.State ?? "unknown") + (s.Process.Paused ? " (paused)" : running ? string.Empty : " (not running)");
            var live = running && m is { State: not "down" };
            rows.Add(
            [
                s.Number.ToString(CultureInfo.InvariantCulture),
                s.Address.ToString(),
                m?.Role ?? "down",
                state,
                !live ? "-" : m!.InSync ? "yes" : "no",
                (m?.LogEnd ?? 0).ToString(CultureInfo.InvariantCulture),
                (m?.Lag ?? 0).ToString(CultureInfo.InvariantCulture),
                m?.HeartbeatAgeMs is { } a ? string.Create(CultureInfo.InvariantCulture, $"{a:0} ms") : "never",
                running ? s.Process.Pid.ToString(CultureInfo.InvariantCulture) : "-",
            ]);
        }

        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"epoch {status.Epoch} · phase {status.Phase} · primary {status.Primary ?? "none"} · in sync [{string.Join(", ", status.InSync)}]");
        foreach (var row in rows)
        {
            sb.Append("  ").AppendJoin("  ", row.Select((cell, c) => Numeric[c] ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))).Append('\n');
        }

        if (cluster.Monitors.Count > 1 || group is { Members.Count: > 1 })
        {
            AppendMonitors(sb, cluster, group);
        }

        return string.Join('\n', sb.ToString().Split('\n').Select(l => l.TrimEnd())).TrimEnd();
    }

    /// <summary>The monitor group: each monitor, which is active, and how the answering monitor sees it.</summary>
    private static void AppendMonitors(StringBuilder sb, LocalCluster cluster, MonitorGroupView? group)
    {
        sb.AppendLine(CultureInfo.InvariantCulture, $"monitors · {group?.Coordinator ?? "?"} · term {group?.Term.ToString(CultureInfo.InvariantCulture) ?? "?"} · active {Describe(cluster, group?.Active)}{(group is { HasQuorum: false } ? " · NO QUORUM" : string.Empty)}");
        var rows = new List<string[]> { MonitorHeader };
        foreach (var m in cluster.Monitors)
        {
            var seen = group?.Members.FirstOrDefault(x => x.Address == m.Heartbeat.ToString());
            var running = m.Process.Running;
            rows.Add(
            [
                m.Number.ToString(CultureInfo.InvariantCulture),
                m.Heartbeat.ToString(),
                m.Client.ToString(),
                seen is null ? "?" : seen.Active ? "active" : "follower",
                (seen?.State ?? "unknown") + (m.Process.Paused ? " (paused)" : running ? string.Empty : " (not running)"),
                running ? m.Process.Pid.ToString(CultureInfo.InvariantCulture) : "-",
            ]);
        }

        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (var row in rows)
        {
            sb.Append("  ").AppendJoin("  ", row.Select((cell, c) => cell.PadRight(widths[c]))).Append('\n');
        }
    }

    private static string Describe(LocalCluster cluster, string? heartbeat) =>
        heartbeat is null ? "none" : NodeAddress.TryParse(heartbeat, out var a) && cluster.MonitorAt(a) is { } m ? $"monitor {m.Number} ({heartbeat})" : heartbeat;
}

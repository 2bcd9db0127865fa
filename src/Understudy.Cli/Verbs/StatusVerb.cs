using System.CommandLine;
using Spectre.Console;
using Understudy.Cli.Cluster;
using Understudy.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;

namespace Understudy.Cli.Verbs;

/// <summary>`understudy status`: the cluster as a table, like `patronictl list` (or JSON, or refreshed live).</summary>
internal static class StatusVerb
{
    public static Command Create()
    {
        var monitor = ClientVerb.MonitorOption();
        var json = new Option<bool>("--json") { Description = "Print the status as one JSON object." };
        var watch = new Option<bool>("--watch") { Description = "Refresh the table in place until Ctrl+C." };
        var interval = new Option<int>("--interval-ms") { Description = "Refresh interval with --watch.", DefaultValueFactory = _ => 500 };
        var command = new Command("status", "Show every server (role, state, in-sync, epoch, log end, lag, last heartbeat, pid) and the monitor group (each monitor, which is active, the term; from whichever monitor answers).") { monitor, json, watch, interval };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var address = ClientVerb.ParseMonitor(parse, monitor);
            await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = address });
            if (parse.GetValue(watch))
            {
                return await WatchAsync(client, address, TimeSpan.FromMilliseconds(Math.Max(50, parse.GetValue(interval))), cancellationToken);
            }

            var (status, group) = await FetchViewAsync(client, address, cancellationToken);
            if (status is null)
            {
                return 1;
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(status.ToJson());
            }
            else
            {
                AnsiConsole.Write(Render(status, group));
            }

            return 0;
        });
        return command;
    }

    /// <summary>Asks the monitor for its status; prints a readable error and returns null if it does not answer.</summary>
    public static async Task<ClusterStatus?> FetchAsync(UnderstudyClient client, IReadOnlyList<NodeAddress> monitor, CancellationToken cancellationToken, bool quiet = false) =>
        (await FetchViewAsync(client, monitor, cancellationToken, quiet)).Status;

    /// <summary>The status and the monitor group from one answer of whichever monitor answers; both null (and an error printed) if none does.</summary>
    public static async Task<(ClusterStatus? Status, MonitorGroupView? Group)> FetchViewAsync(UnderstudyClient client, IReadOnlyList<NodeAddress> monitor, CancellationToken cancellationToken, bool quiet = false)
    {
        try
        {
            var response = await ClientVerb.AskStatusAsync(client, cancellationToken);
            return (ClusterStatus.FromJson(response.Body.Span), MonitorGroupView.FromStatusJson(response.Body.Span));
        }
        catch (UnderstudyException)
        {
            if (!quiet)
            {
                Console.Error.WriteLine($"error: {ClientVerb.MonitorUnreachable(monitor)}");
            }

            return (null, null);
        }
    }

    /// <summary>The servers' table, and below it the monitor group's when the answering monitor reports a group (a group of one shows as it always did).</summary>
    public static Spectre.Console.Rendering.IRenderable Render(ClusterStatus status, MonitorGroupView? group) =>
        group is not { Members.Count: > 1 } ? Render(status) : new Rows(Render(status), RenderGroup(group));

    /// <summary>Each monitor (by heartbeat address), which is active, and up/lagging/unreachable as the answering one sees it.</summary>
    public static Table RenderGroup(MonitorGroupView group)
    {
        var table = new Table().Border(TableBorder.Rounded).BorderColor(Color.Grey);
        var quorum = group.HasQuorum ? string.Empty : " · [red bold]no quorum[/]";
        table.Title = new TableTitle($"monitors · {Markup.Escape(group.Coordinator)} · term [bold]{group.Term}[/] · active [bold]{Markup.Escape(group.Active ?? "none")}[/]{quorum}");
        foreach (var header in new[] { "monitor", "role", "state", "answered" })
        {
            table.AddColumn(new TableColumn(header));
        }

        foreach (var m in group.Members)
        {
            table.AddRow(
                Markup.Escape(m.Address),
                m.Active ? "[green bold]active[/]" : "[blue]follower[/]",
                m.State switch
                {
                    "up" => "[green]up[/]",
                    "lagging" => "[yellow]lagging[/]",
                    _ => $"[red]{Markup.Escape(m.State)}[/]",
                },
                m.Self ? "yes" : string.Empty);
        }

        return table;
    }

    public static Table Render(ClusterStatus status)
    {
        var table = new Table().Border(TableBorder.Rounded).BorderColor(Color.Grey);
        table.Title = new TableTitle($"epoch [bold]{status.Epoch}[/] · config v{status.Version} · {Phase(status.Phase)} · primary [bold]{Markup.Escape(status.Primary ?? "none")}[/] · lease {status.LeaseRemainingMs:0} ms");
        foreach (var header in new[] { "#", "member", "role", "state", "in sync", "epoch", "log end", "lag", "last heartbeat", "pid" })
        {
            table.AddColumn(new TableColumn(header));
        }

        var n = 0;
        foreach (var m in status.Members.OrderByDescending(m => m.Priority))
        {
            n++;
            var role = m.Role switch
            {
                "primary" => "[green bold]primary[/]",
                "backup" => "[blue]backup[/]",
                _ => "[red bold]down[/]",
            };
            var state = m.State switch
            {
                "alive" => "[green]alive[/]",
                "suspected" => "[yellow]suspected[/]",
                "down" => $"[red]down[/]{(m.DownReason is { } why ? $" [grey]({Markup.Escape(why)})[/]" : string.Empty)}",
                _ => "[grey]unknown[/]",
            };
            table.AddRow(
                n.ToString(System.Globalization.CultureInfo.InvariantCulture),
                Markup.Escape(m.Address),
                role,
                state,
                // A down member may stay in the primary's in-sync set until the next write; it holds nothing new
                // meanwhile, and its last pid belongs to a process that is gone: neither is shown as if live.
                m.State == "down" ? "[grey]-[/]" : m.InSync ? "[green]yes[/]" : "[yellow]no[/]",
                m.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture),
                m.LogEnd.ToString(System.Globalization.CultureInfo.InvariantCulture),
                m.Lag.ToString(System.Globalization.CultureInfo.InvariantCulture),
                m.HeartbeatAgeMs is { } age ? $"{age:0} ms ago" : "[grey]never[/]",
                m.Pid == 0 || m.State == "down" ? "-" : m.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return table;
    }

    private static string Phase(string phase) => phase switch
    {
        "Stable" => "[green]stable[/]",
        "NoCandidate" => "[red bold]no candidate[/]",
        _ => $"[yellow]{Markup.Escape(phase)}[/]",
    };

    private static async Task<int> WatchAsync(UnderstudyClient client, IReadOnlyList<NodeAddress> monitor, TimeSpan interval, CancellationToken cancellationToken)
    {
        var (first, firstGroup) = await FetchViewAsync(client, monitor, cancellationToken);
        if (first is null)
        {
            return 1;
        }

        try
        {
            await AnsiConsole.Live(Render(first, firstGroup)).StartAsync(async live =>
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    await Task.Delay(interval, cancellationToken);
                    var (status, group) = await FetchViewAsync(client, monitor, cancellationToken, quiet: true);
                    live.UpdateTarget(status is null ? new Markup($"[red]no monitor of {Markup.Escape(MonitorAddresses.Format(monitor))} answers; retrying…[/]") : Render(status, group));
                }
            });
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        return 0;
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Client;
using Understudy.Hosting;
using Understudy.Protocol;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy promote --force N`: the unsafe forced promotion, for when the monitor will not promote on its own
/// (no alive in-sync backup). It says loudly what may be lost and asks for confirmation unless --yes.
/// </summary>
internal static class PromoteVerb
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static Command Create()
    {
        var target = new Argument<string>("target") { Description = "The server to promote: N as `up` numbers them (1 = first port), or host:port." };
        var force = new Option<bool>("--force") { Description = "Required: this promotion skips the safety rules and may lose acknowledged writes." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation (scripts)." };
        var monitor = SwitchoverVerb.MonitorOption();
        var data = UpVerb.DataOption();
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object (needs --yes)." };
        var command = new Command("promote", "UNSAFE: force a server to become primary even if it is not in sync (acknowledged writes it lacks are lost). For a safe planned handover use `switchover`.")
        {
            target, force, yes, monitor, data, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var folder = parse.GetValue(data)!;
            var up = UpInfo.LoadIfRunning(folder);
            if (!parse.GetValue(force))
            {
                throw new UsageException("promote only exists as `promote --force N`, the unsafe forced promotion. For a planned handover with nothing lost, use `understudy switchover --to N`; after a failure the monitor promotes an in-sync backup by itself.");
            }

            if (parse.GetValue(json) && !parse.GetValue(yes))
            {
                throw new UsageException("--json needs --yes (there is no one to confirm)");
            }

            var address = SwitchoverVerb.ResolveMonitor(parse, monitor, up);
            var server = UpInfo.ResolveServer(parse.GetValue(target)!, up, "target", folder);
            return await RunAsync(address, server, up, parse.GetValue(yes), parse.GetValue(json), cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(IReadOnlyList<NodeAddress> monitor, NodeAddress target, UpInfo? up, bool yes, bool json, CancellationToken cancellationToken)
    {
        await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = monitor });
        var status = await StatusVerb.FetchAsync(client, monitor, cancellationToken);
        if (status is null)
        {
            return 1;
        }

        var name = UpInfo.Describe(target.ToString(), up);
        var member = status.Members.FirstOrDefault(m => m.Address == target.ToString());
        if (member is null)
        {
            return CommandOutput.Fail(json, $"{target} is not a member of this cluster; members: {string.Join(", ", status.Members.Select(m => UpInfo.Describe(m.Address, up)))}");
        }

        var warnings = Warnings(status, member, name);
        if (!json)
        {
            AnsiConsole.MarkupLine("[red bold]WARNING: forced promotion[/]");
            foreach (var w in warnings)
            {
                AnsiConsole.MarkupLine($"  [red]•[/] {Markup.Escape(w)}");
            }
        }

        if (!yes)
        {
            if (Console.IsInputRedirected)
            {
                return CommandOutput.Fail(json, "refusing a forced promotion without confirmation: no terminal to ask; pass --yes if you accept the losses above");
            }

            Console.Write($"Type 'yes' to promote {name} anyway: ");
            var answer = Console.ReadLine();
            if (!string.Equals(answer?.Trim(), "yes", StringComparison.OrdinalIgnoreCase))
            {
                Console.Error.WriteLine("not confirmed; nothing changed");
                return 1;
            }
        }

        var watch = Stopwatch.StartNew();
        AdminResponse response;
        try
        {
            response = await client.AdminAsync(AdminCommand.ForcePromote, target, TimeSpan.FromSeconds(30), cancellationToken);
        }
        catch (UnderstudyException e)
        {
            return CommandOutput.Fail(json, $"no answer from the monitor: {e.Message}. The promotion may still complete; check `understudy status`.");
        }

        if (!response.Ok)
        {
            return CommandOutput.Fail(json, $"forced promotion refused: {response.Message}");
        }

        // The monitor's own judgement, recorded when it accepted the request: in sync or not, and how far behind.
        var events = await EventsAsync(client, cancellationToken);
        var said = events.LastOrDefault(e => e.Kind == "ForcedPromotion" && e.Member == target.ToString())?.Detail;
        var after = await StatusVerb.FetchAsync(client, monitor, cancellationToken, quiet: true);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { ok = true, target = target.ToString(), inSync = member.InSync, warnings, monitorWarning = said, message = response.Message, epoch = after?.Epoch, tookMs = Math.Round(watch.Elapsed.TotalMilliseconds, 1) }, Json));
        }
        else
        {
            Console.WriteLine($"forced promotion done in {watch.Elapsed.TotalMilliseconds:0} ms: {name} is primary, epoch {after?.Epoch.ToString(CultureInfo.InvariantCulture) ?? "?"}");
            if (said is not null)
            {
                AnsiConsole.MarkupLine($"  monitor: {(said.StartsWith("UNSAFE", StringComparison.Ordinal) ? "[red bold]" + Markup.Escape(said) + "[/]" : Markup.Escape(said))}");
            }

            Console.WriteLine($"  {response.Message}");
        }

        return 0;
    }

    /// <summary>What this promotion may cost, from the monitor's view before it happens.</summary>
    internal static List<string> Warnings(ClusterStatus status, MemberStatus member, string name)
    {
        var list = new List<string>();
        var longest = status.Members.Max(m => m.LogEnd);
        if (member.State != "alive")
        {
            list.Add($"{name} is {member.State}: the monitor will refuse until it is alive");
        }

        if (member.InSync)
        {
            list.Add($"{name} is in the in-sync set: it should hold every acknowledged write.");
        }
        else
        {
            var behind = Math.Max(0, longest - member.LogEnd);
            list.Add($"{name} is NOT in sync: its log ends at {member.LogEnd}, the longest log known ends at {longest} ({behind} entries ahead of it).");
            list.Add("Acknowledged writes it does not hold WILL BE LOST, and the other servers will drop what differs from its log when they follow it.");
        }

        if (status.Primary is { } primary && primary != member.Address && status.Members.Any(m => m.Address == primary && m.State == "alive"))
        {
            list.Add($"The current primary {primary} is alive: it stops serving when its lease runs out; calls in flight there are retried at {name}. A switchover (`understudy switchover --to N`) does this safely.");
        }

        list.Add("Clients are told of the new primary at once; the monitor records this promotion as forced.");
        return list;
    }

    private static async Task<IReadOnlyList<EventView>> EventsAsync(UnderstudyClient client, CancellationToken cancellationToken)
    {
        try
        {
            var response = await client.AdminAsync(AdminCommand.Events, NodeAddress.None, TimeSpan.FromSeconds(3), cancellationToken);
            return JsonSerializer.Deserialize<List<EventView>>(response.Body.Span, ClusterStatus.Json) ?? [];
        }
        catch (UnderstudyException)
        {
            return [];
        }
    }
}

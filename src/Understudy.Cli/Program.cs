using System.CommandLine;
using Understudy.Cli.Infrastructure;
using Understudy.Cli.Processes;
using Understudy.Cli.Verbs;

namespace Understudy.Cli;

/// <summary>The `understudy` command: primary-backup redundancy with a monitor, servers and clients.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        ParentWatchdog.StartIfSupervised();
        var root = new RootCommand("Understudy: primary-backup server redundancy. A monitor watches a primary and its hot backups, promotes a backup when the primary dies, and tells every client; no acknowledged message is lost.")
        {
            ServerVerb.Create(),
            MonitorVerb.Create(),
            ClientVerb.Create(),
            StatusVerb.Create(),
            UpVerb.Create(),
            SimulateVerb.Create(),
            SwitchoverVerb.Create(),
            PromoteVerb.Create(),
        };

        try
        {
            foreach (var control in ControlVerbs.Create())
            {
                root.Subcommands.Add(control);
            }

            // Without the default handler a verb's UsageException reaches the catch below: one line, exit code 2.
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"unexpected error: {e}");
            return 1;
        }
    }
}

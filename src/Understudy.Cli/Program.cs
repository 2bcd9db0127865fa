using System.CommandLine;
using Understudy.Cli.Infrastructure;
using Understudy.Cli.Verbs;
using Understudy.Orchestration.Processes;

namespace Understudy.Cli;

/// <summary>The `understudy` command: primary-backup redundancy with a monitor, servers and clients.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        ParentWatchdog.StartIfSupervised();

        // Piped output has no terminal width; tables should not wrap at 80 columns in logs and scripts.
        if (Console.IsOutputRedirected)
        {
            Spectre.Console.AnsiConsole.Profile.Width = 200;
        }
        var root = new RootCommand("Understudy: primary-backup server redundancy. A monitor watches a primary and its hot backups, promotes a backup when the primary dies, and tells every client; no acknowledged message is lost.")
        {
            ServerVerb.Create(),
            MonitorVerb.Create(),
            ClientVerb.Create(),
            StatusVerb.Create(),
            UpVerb.Create(),
            DemoVerb.Create(),
            ChaosVerb.Create(),
            SimulateVerb.Create(),
            SwitchoverVerb.Create(),
            PromoteVerb.Create(),
            BenchVerb.Create(),
        };

        foreach (var control in ControlVerbs.Create())
        {
            root.Subcommands.Add(control);
        }

        // The default handler would catch a UsageException thrown inside a verb's action and print it as an
        // "Unhandled exception" with a stack trace and exit code 1; it must reach the one-line handler below.
        var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        try
        {
            return await root.Parse(args).InvokeAsync(invocation);
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

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
        // First of all: the runtime reads this switch when the first socket operation starts.
        SocketCompletions.Choose(args);
        ParentWatchdog.StartIfSupervised();

        // Piped output has no terminal width; tables should not wrap at 80 columns in logs and scripts.
        if (Console.IsOutputRedirected)
        {
            Spectre.Console.AnsiConsole.Profile.Width = 200;
        }
        var root = new RootCommand("Understudy: primary-backup server redundancy. A monitor watches a primary and its hot backups, promotes a backup when the primary dies, and tells every client; no acknowledged message is lost.\n\n" + ExitCodes.HelpText)
        {
            ServerVerb.Create(),
            MonitorVerb.Create(),
            ClientVerb.Create(),
            KvVerb.Create(),
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
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
        {
            // One line in our words and the verb's usage line, not System.CommandLine's text and the whole help page.
            return UsageErrors.Report(parse);
        }

        try
        {
            return await parse.InvokeAsync(invocation);
        }
        catch (UsageException e)
        {
            return UsageErrors.Report(e.Message, parse.CommandResult.Command);
        }
        catch (CliFailure e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Interrupted;
        }
        catch (Understudy.Client.UnderstudyException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Failure;
        }
        catch (Exception e)
        {
            // Never a stack trace for the user; UNDERSTUDY_DEBUG=1 shows it for a bug report.
            Console.Error.WriteLine(Environment.GetEnvironmentVariable("UNDERSTUDY_DEBUG") is { Length: > 0 }
                ? $"error: unexpected failure: {e}"
                : $"error: unexpected failure: {e.Message.ReplaceLineEndings(" ")} (run again with UNDERSTUDY_DEBUG=1 for details to report)");
            return ExitCodes.Failure;
        }
    }
}

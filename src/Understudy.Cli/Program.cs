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
            DemoVerb.Create(),
            ChaosVerb.Create(),
            SimulateVerb.Create(),
            BenchVerb.Create(),
        };

        try
        {
            foreach (var control in ControlVerbs.Create())
        {
            root.Subcommands.Add(control);
        }

        return await root.Parse(args).InvokeAsync();
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}

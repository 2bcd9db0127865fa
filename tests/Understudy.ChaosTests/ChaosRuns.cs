using System.Diagnostics;
using Understudy.Orchestration.Chaos;
using Understudy.Orchestration.Processes;

namespace Understudy.ChaosTests;

/// <summary>What the chaos test classes share: a short run on real processes, and the CLI run as a child process.</summary>
internal static class ChaosRuns
{
    /// <summary>The options of a short run of <paramref name="scenario"/> with three clients, its folder under <paramref name="folder"/>.</summary>
    public static ChaosOptions Options(ChaosScenario scenario, int faults, int seed, DirectoryInfo folder) => new()
    {
        Scenario = scenario,
        Faults = faults,
        Seed = seed,
        Clients = 3,
        RunFolder = Path.Combine(folder.FullName, ChaosRunner.Name(scenario)),
    };

    /// <summary>Runs chaos with <paramref name="options"/>, its progress lines going to the test's output.</summary>
    public static async Task<ChaosResult> RunAsync(ChaosOptions options, ITestOutputHelper output)
    {
        await using var runner = new ChaosRunner(options, line => output.WriteLine(line));
        return await runner.RunAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>Runs the CLI with <paramref name="args"/> and returns its exit code and everything it printed; never leaves it running.</summary>
    public static async Task<(int Code, string Output)> RunCliAsync(params string[] args)
    {
        var info = CliLauncher.StartInfo(args);
        using var process = Process.Start(info)!;
        try
        {
            var stdout = await process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            var stderr = await process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
            return (process.ExitCode, stdout + stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}

using Understudy.Checking;
using Understudy.Orchestration.Chaos;

// Each scenario starts a whole cluster: one at a time keeps a 2-core machine honest.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Understudy.ChaosTests;

/// <summary>
/// A short chaos run per scenario on real processes (a couple of faults each): the verdict must be valid,
/// the faults must really have been injected, and the run folder must hold the history and the plot.
/// </summary>
public sealed class ChaosScenarioTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-chaos-");

    [Theory]
    [InlineData("kill-primary", 2)]
    [InlineData("kill-backup", 2)]
    [InlineData("kill-primary-and-backup", 1)]
    [InlineData("chain", 1)]
    [InlineData("random", 2)]
    [InlineData("kill-all", 1)]
    [InlineData("pause", 1)]
    [InlineData("monitor", 1)]
    [InlineData("mixed", 2)]
    public async Task Scenario_run_is_judged_valid(string name, int faults)
    {
        var scenario = Enum.GetValues<ChaosScenario>().Single(s => ChaosRunner.Name(s) == name);
        var result = await RunAsync(scenario, faults);

        Assert.True(result.Verdict == "valid", $"{ChaosRunner.Name(scenario)}: {string.Join("; ", result.Violations)}");
        Assert.Equal(faults, result.FaultsByKind.Values.Sum());
        Assert.True(result.Acknowledged > 50, $"too few acknowledged writes to judge: {result.Acknowledged}");
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.Duplicated);
        Assert.True(File.Exists(Path.Combine(result.RunFolder!, "history.jsonl")));
        Assert.True(File.Exists(Path.Combine(result.RunFolder!, "timeline.png")));
        Assert.True(File.Exists(Path.Combine(result.RunFolder!, "timeline.svg")));
        if (scenario is ChaosScenario.KillPrimary or ChaosScenario.Chain or ChaosScenario.Pause)
        {
            Assert.True(result.Failovers >= faults, $"expected at least {faults} failover(s), saw {result.Failovers}");
        }
    }

    [Fact]
    public async Task Partition_run_is_judged_valid()
    {
        if (NamespaceNetwork.Unsupported() is { } why)
        {
            Assert.Skip($"partition needs Linux network namespaces: {why}");
        }

        var result = await RunAsync(ChaosScenario.Partition, 1);
        Assert.True(result.Verdict == "valid", string.Join("; ", result.Violations));
        Assert.True(result.Failovers >= 1, "cutting the primary off for longer than its lease must cause a failover");
    }

    [Fact]
    public async Task A_lossy_client_history_makes_chaos_report_invalid()
    {
        var result = await RunAsync(ChaosScenario.KillPrimary, 1);
        Assert.Equal("valid", result.Verdict);
        var historyPath = Path.Combine(result.RunFolder!, "history.jsonl");

        // Lose a message: claim the first acknowledged append never reached the final log.
        var finalLog = File.ReadAllLines(Path.Combine(result.RunFolder!, "final-log.txt")).ToList();
        History history;
        using (var reader = File.OpenText(historyPath))
        {
            history = History.ReadJsonLines(reader);
        }

        var acked = history.Operations.First(o => o.Type == OpType.Ok && o.Function == OpFunction.Append);
        finalLog.Remove(acked.Value!);
        File.WriteAllLines(Path.Combine(result.RunFolder!, "final-log.txt"), finalLog);

        var (code, stdout) = await ChaosRuns.RunCliAsync("chaos", "verify", result.RunFolder!);
        output.WriteLine(stdout);
        Assert.Equal(1, code);
        Assert.Contains("LostWrite", stdout, StringComparison.Ordinal);
        Assert.Contains("verdict: invalid", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_that_cannot_recover_ends_invalid_within_its_bound_saying_why()
    {
        // monitor-loss leaves the monitor down: nothing can fail over or renew a lease until the final heal.
        var options = new ChaosOptions
        {
            Scenario = ChaosScenario.KillPrimary,
            Schedule = ["monitor-loss", "kill-primary"],
            FaultTimeout = TimeSpan.FromSeconds(5),
            Seed = 42,
            Clients = 2,
            RunFolder = Path.Combine(_folder.FullName, "no-recovery"),
        };
        await using var runner = new ChaosRunner(options, line => output.WriteLine(line));

        // Generous: the fault's 5 s, the final heal and read-back, and starting and stopping the cluster.
        var result = await runner.RunAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);

        output.WriteLine(string.Join("; ", result.Violations));
        Assert.Equal("invalid", result.Verdict);
        Assert.NotNull(result.Aborted);
        Assert.Contains("fault 1/2 (monitor-loss) did not recover within 5 s", result.Aborted, StringComparison.Ordinal);
        Assert.Contains(result.Violations, v => v.Contains("NoRecovery", StringComparison.Ordinal) && v.Contains("monitor-loss", StringComparison.Ordinal));

        // The run stopped at the fault it could not recover from.
        Assert.Equal(1, result.Faults);
    }

    private async Task<ChaosResult> RunAsync(ChaosScenario scenario, int faults)
    {
        var result = await ChaosRuns.RunAsync(ChaosRuns.Options(scenario, faults, 42, _folder), output);
        output.WriteLine($"{result.Scenario}: {result.Verdict}, {result.Acknowledged} acknowledged, {result.Failovers} failovers, unavailable p50 {result.UnavailableMs.P50} ms max {result.UnavailableMs.Max} ms, {result.ElapsedSeconds} s");
        return result;
    }

    public void Dispose()
    {
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A process was still closing a log file; the temporary folder goes with the OS's clean-up.
        }
    }
}

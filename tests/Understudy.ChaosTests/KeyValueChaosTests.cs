using Understudy.Checking.Linearizability;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Chaos;

namespace Understudy.ChaosTests;

/// <summary>
/// A short chaos run with the key-value store per fault kind (kill, pause, and partition where network namespaces are
/// available), one fault each: the workload's gets, puts, deletes, compare-and-sets and increments, and a final get of
/// every key, must be linearizable.
/// </summary>
public sealed class KeyValueChaosTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-kv-chaos-");

    [Theory]
    [InlineData("kill-primary")]
    [InlineData("pause")]
    [InlineData("partition")]
    public async Task Key_value_run_is_linearizable(string name)
    {
        var scenario = Enum.GetValues<ChaosScenario>().Single(s => ChaosRunner.Name(s) == name);
        if (scenario == ChaosScenario.Partition && NamespaceNetwork.Unsupported() is { } why)
        {
            Assert.Skip($"partition needs Linux network namespaces: {why}");
        }

        var result = await RunAsync(scenario);

        Assert.True(result.Verdict == "valid", $"{name}: {string.Join("; ", result.Violations)}");
        Assert.Equal(1, result.FaultsByKind.Values.Sum());
        Assert.True(result.Acknowledged > 50, $"too few acknowledged calls to judge: {result.Acknowledged}");
        Assert.True(File.Exists(Path.Combine(result.RunFolder!, "linearizability.txt")));
        if (scenario is ChaosScenario.KillPrimary or ChaosScenario.Pause)
        {
            Assert.True(result.Failovers >= 1, $"{name}: expected a failover, saw {result.Failovers}");
        }

        if (scenario == ChaosScenario.KillPrimary)
        {
            await AStaleReadPlantedInTheHistoryMakesVerifyReportInvalid(result.RunFolder!);
        }
    }

    /// <summary>The verdict has teeth: the same run's history with one get made to read a value never written is judged invalid.</summary>
    private async Task AStaleReadPlantedInTheHistoryMakesVerifyReportInvalid(string runFolder)
    {
        var historyPath = Path.Combine(runFolder, "history.jsonl");
        KvHistory history;
        using (var reader = File.OpenText(historyPath))
        {
            history = KvHistory.ReadJsonLines(reader);
        }

        var calls = history.Operations.ToList();
        var victim = calls.FindLastIndex(o => o is { Function: KvFunction.Get, Outcome: KvOutcome.Ok });
        Assert.True(victim >= 0, "the run made no acknowledged get");
        calls[victim] = calls[victim] with { Result = "never-written" };
        using (var writer = File.CreateText(historyPath))
        {
            new KvHistory(calls).WriteJsonLines(writer);
        }

        var (code, stdout) = await ChaosRuns.RunCliAsync("chaos", "verify", runFolder);
        output.WriteLine(stdout);
        Assert.Equal(1, code);
        Assert.Contains("never-written", stdout, StringComparison.Ordinal);
        Assert.Contains("verdict: invalid", stdout, StringComparison.Ordinal);
    }

    private async Task<ChaosResult> RunAsync(ChaosScenario scenario)
    {
        var result = await ChaosRuns.RunAsync(ChaosRuns.Options(scenario, 1, 42, _folder) with { StateMachine = BuiltInStateMachine.Kv }, output);
        output.WriteLine($"{result.Scenario} (kv): {result.Verdict}, {result.Operations} calls, {result.Acknowledged} acknowledged, {result.Indeterminate} unknown, {result.Failovers} failovers, {result.ElapsedSeconds} s");
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

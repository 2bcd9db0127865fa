using Understudy.Orchestration.Bench;
using Understudy.Orchestration.Chaos;

namespace Understudy.ChaosTests;

/// <summary>
/// Short runs of the monitor group's faults on a real cluster with three monitors (a Raft group): the active
/// monitor killed, a majority of monitors killed (with the primary, so nothing may be promoted), the active
/// monitor and the primary cut off together; and the failover bench killing the active monitor under load.
/// </summary>
public sealed class MonitorGroupChaosTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-monitor-chaos-");

    [Fact]
    public async Task Killing_the_active_monitor_again_and_again_is_judged_valid_and_refuses_no_write_for_want_of_a_lease()
    {
        var result = await RunAsync(ChaosScenario.MonitorLeader, 2);

        Assert.True(result.Verdict == "valid", string.Join("; ", result.Violations));
        Assert.Equal(3, result.Monitors);
        Assert.Equal(2, result.FaultsByKind.GetValueOrDefault("monitor-leader"));
        Assert.Equal(0, result.Lost);
        Assert.Equal(0L, result.LeaseRefused);
    }

    [Fact]
    public async Task Losing_a_majority_of_monitors_with_the_primary_promotes_nothing_and_recovers_valid()
    {
        // Two faults: the first kills the primary with the majority (nothing may be promoted), the second does not.
        var result = await RunAsync(ChaosScenario.MonitorMajority, 2);

        Assert.True(result.Verdict == "valid", string.Join("; ", result.Violations));
        Assert.Equal(2, result.FaultsByKind.GetValueOrDefault("monitor-majority"));
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.Duplicated);
    }

    [Fact]
    public async Task Cutting_off_the_active_monitor_with_the_primary_is_judged_valid()
    {
        if (NamespaceNetwork.Unsupported() is { } why)
        {
            Assert.Skip($"monitor-partition needs Linux network namespaces: {why}");
        }

        var result = await RunAsync(ChaosScenario.MonitorPartition, 1);

        Assert.True(result.Verdict == "valid", string.Join("; ", result.Violations));
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.EpochViolations);
    }

    [Fact]
    public async Task Failover_bench_killing_the_active_monitor_loses_nothing_and_refuses_no_write_for_want_of_a_lease()
    {
        var options = new FailoverOptions
        {
            Rounds = 2,
            Fault = "kill-monitor",
            Monitors = 3,
            Clients = 2,
            RunFolder = Path.Combine(_folder.FullName, "bench-kill-monitor"),
        };

        var result = await new FailoverBench(options, line => output.WriteLine(line)).RunAsync(TestContext.Current.CancellationToken);
        output.WriteLine($"kill-monitor: {result.Verdict}, stall p50 {result.UnavailableMs.P50} ms max {result.UnavailableMs.Max} ms, {result.LeaseRefused} refused for want of a lease");

        Assert.True(result.Verdict == "valid", string.Join("; ", result.Violations));
        Assert.Equal(2, result.Rounds);
        Assert.Equal(0, result.Lost);
        Assert.Equal(0, result.Duplicated);
        Assert.Equal(0L, result.LeaseRefused);
        Assert.All(result.Samples, s => Assert.NotNull(s.Monitor));
    }

    private async Task<ChaosResult> RunAsync(ChaosScenario scenario, int faults)
    {
        var result = await ChaosRuns.RunAsync(ChaosRuns.Options(scenario, faults, 7, _folder), output);
        output.WriteLine($"{result.Scenario}: {result.Verdict}, {result.Monitors} monitors, {result.Acknowledged} acknowledged, {result.Failovers} failovers, {result.LeaseRefused} refused for want of a lease, {result.ElapsedSeconds} s");
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

using System.Text;

namespace Understudy.Simulation.Tests;

/// <summary>
/// Session expiry under the simulator: every seed runs servers with a short session idle timeout and skewed wall clocks,
/// so sessions expire, retries from them are refused, and log time crosses failovers, all judged by the same checker
/// (a refusal is an unknown outcome, never a failure, and never a duplicate).
/// </summary>
public class SessionExpirySweepTests(ITestOutputHelper output)
{
    private const int Seeds = 150;

    private static SimulationOptions Options(int seed) => new() { Seed = seed, ShortSessionsEvery = 1 };

    [Fact]
    public void Sweep_with_short_sessions_and_skewed_clocks_finds_no_violation_and_refuses_expired_sessions()
    {
        var result = Simulator.Sweep(1, Seeds, Options, cancellationToken: TestContext.Current.CancellationToken);
        output.WriteLine($"{result.Seeds} seeds in {result.ElapsedSeconds:0.0} s: {result.Acknowledged} acknowledged");
        foreach (var (kind, n) in result.Faults)
        {
            output.WriteLine($"  {kind,-24} {n,8}");
        }

        var report = new StringBuilder();
        foreach (var v in result.Violations.Take(10))
        {
            report.AppendLine($"seed {v.Seed}: {v.Kind}: {v.Detail}");
        }

        Assert.True(result.Violations.Count == 0, report.ToString());
        var refusals = result.Faults.GetValueOrDefault("session-expired-refusal");
        Assert.True(refusals > Seeds / 10, $"expired sessions were refused only {refusals} times in {Seeds} seeds: the sweep does not exercise expiry");
    }
}

using System.Text;

namespace Understudy.Simulation.Tests;

/// <summary>
/// Long-running servers under the simulator: tiny snapshot intervals and a one-entry log window, so every run
/// snapshots, reads evicted entries back from the simulated disk, and restarts from snapshot + tail, all judged
/// by the same checker.
/// </summary>
public class LongLogSweepTests(ITestOutputHelper output)
{
    private const int Seeds = 400;

    private static SimulationOptions Options(int seed)
    {
        var defaults = new SimulationOptions();
        return defaults with
        {
            Seed = seed,
            Server = defaults.Server with { SnapshotEveryEntries = 16, LogWindowEntries = 1, LogWindowBytes = 1 },
        };
    }

    [Fact]
    public void Sweep_with_snapshots_every_16_entries_and_a_one_entry_window_finds_no_violation_and_restarts_from_snapshots()
    {
        var result = Simulator.Sweep(1, Seeds, Options, cancellationToken: TestContext.Current.CancellationToken);
        output.WriteLine($"{result.Seeds} seeds in {result.ElapsedSeconds:0.0} s: {result.Acknowledged} acknowledged");
        foreach (var (kind, n) in result.Faults)
        {
            output.WriteLine($"  {kind,-22} {n,8}");
        }

        var report = new StringBuilder();
        foreach (var v in result.Violations.Take(10))
        {
            report.AppendLine($"seed {v.Seed}: {v.Kind}: {v.Detail}");
        }

        Assert.True(result.Violations.Count == 0, report.ToString());
        Assert.True(result.Faults.GetValueOrDefault("started-from-snapshot") > Seeds / 4, $"servers restarted from a snapshot only {result.Faults.GetValueOrDefault("started-from-snapshot")} times in {Seeds} seeds");
    }

    [Fact]
    public void Sweep_catches_a_backlog_read_from_disk_one_entry_off()
    {
        // With a one-entry window every backlog a primary sends is read back from the simulated disk and goes out as
        // encoded bytes (EncodedEntries): a run one entry late puts the wrong entries at the right indices.
        var result = Simulator.Sweep(1, Seeds, seed => Options(seed) with { Codec = () => new ShiftsEncodedRunCodec() }, stopAtFirstViolation: true, cancellationToken: TestContext.Current.CancellationToken);

        Assert.True(result.Violations.Count > 0, $"the shifted encoded run survived {result.Seeds} seeds: the sweep has no teeth for the encoded catch-up path");
        var first = result.Violations.OrderBy(v => v.Seed).First();
        output.WriteLine($"caught at seed {first.Seed} ({result.Seeds} seeds run): {first.Kind}: {first.Detail}");
    }
}

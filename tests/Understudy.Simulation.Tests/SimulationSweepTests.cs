using System.Text;
using Understudy.Checking;

namespace Understudy.Simulation.Tests;

/// <summary>
/// The simulator is the judge: thousands of seeded fault schedules against the real protocol core,
/// and proof that it would notice if the protocol broke a safety rule.
/// </summary>
public class SimulationSweepTests(ITestOutputHelper output)
{
    /// <summary>Seeds the main sweep runs (the issue asks for at least 2,000).</summary>
    private const int SweepSeeds = 2000;

    /// <summary>Seeds the sweep of a monitor group runs (a group's runs are slower: three monitors take every heartbeat).</summary>
    private const int GroupSweepSeeds = 300;

    private static SimulationOptions Options(int seed) => new() { Seed = seed };

    private static SimulationOptions GroupOptions(int seed) => new() { Seed = seed, Monitors = 3 };

    /// <summary>Seeds the key-value sweep runs, and the most a broken key-value variant may survive.</summary>
    private const int KeyValueSeeds = 300;

    private static SimulationOptions KeyValueOptions(int seed) => new() { Seed = seed, StateMachine = SimulatedStateMachine.KeyValue };

    [Fact]
    public void Same_seed_gives_byte_for_byte_the_same_history()
    {
        var first = Simulator.Run(Options(4242) with { Trace = true });
        var second = Simulator.Run(Options(4242) with { Trace = true });

        Assert.True(first.History.Count > 100, $"expected a real workload, got {first.History.Count} history lines");
        Assert.Equal(first.History.ToJsonLines(), second.History.ToJsonLines());
        Assert.Equal(first.Trace, second.Trace);
        Assert.Equal(first.Events, second.Events);
    }

    [Fact]
    public void Different_seeds_give_different_schedules()
    {
        var a = Simulator.Run(Options(1));
        var b = Simulator.Run(Options(2));
        Assert.NotEqual(a.History.ToJsonLines(), b.History.ToJsonLines());
    }

    [Fact]
    public void Sweep_of_2000_fault_schedules_finds_no_violation_and_injects_every_kind_of_fault()
    {
        var result = SweepWithoutViolation(SweepSeeds, Options);

        string[] everyKind =
        [
            "crash-primary", "crash-backup", "restart-server", "crash-monitor", "restart-monitor",
            "pause-server", "pause-monitor", "partition-primary", "partition-server", "partition-monitor",
            "partition-split", "partition-link", "heal", "drop", "duplicate", "reorder", "latency-spike",
            "disk-unsynced-lost", "session-expired-refusal",
        ];
        foreach (var kind in everyKind)
        {
            Assert.True(result.Faults.GetValueOrDefault(kind) > 0, $"fault kind '{kind}' was never injected in {SweepSeeds} seeds");
        }
    }

    [Fact]
    public void Sweep_catches_a_primary_that_acknowledges_before_the_in_sync_backups_have_the_write()
    {
        var caught = FirstViolation(seed => Options(seed) with { CommitRule = () => new AckBeforeBackupsRule() });
        Assert.Contains(caught.Kind, new[] { ViolationKind.LostWrite, ViolationKind.Invariant, ViolationKind.WrongSequence, ViolationKind.StaleRead, ViolationKind.ReadNotPrefix });
    }

    [Fact]
    public void Sweep_catches_a_primary_that_drops_a_backup_from_the_in_sync_set_on_its_own()
    {
        FirstViolation(seed => Options(seed) with { CommitRule = () => new PrimaryDropsBackupAloneRule() });
    }

    /// <summary>Every seed keeps a few messages and snapshots every 16 entries: snapshots, compaction and installs throughout.</summary>
    private static SimulationOptions CompactingOptions(int seed)
    {
        var defaults = new SimulationOptions();
        return defaults with { Seed = seed, RetainMessages = 10, Server = defaults.Server with { SnapshotEveryEntries = 16 } };
    }

    [Fact]
    public void Sweep_with_retention_in_every_seed_installs_snapshots_and_finds_no_violation()
    {
        var result = Simulator.Sweep(1, 200, CompactingOptions, cancellationToken: TestContext.Current.CancellationToken);
        output.WriteLine($"{result.Seeds} seeds: {result.Faults.GetValueOrDefault("snapshot-installed")} snapshots installed, {result.Acknowledged} acknowledged");
        Assert.True(result.Violations.Count == 0, Report(result));
        Assert.True(result.Faults.GetValueOrDefault("snapshot-installed") > 0, "no backup caught up from a snapshot in 200 compacting seeds");
        Assert.True(result.Faults.GetValueOrDefault("crash-backfilling") > 0, "no backup crashed while backfilling in 200 compacting seeds");
    }

    [Fact]
    public void Sweep_catches_a_restart_that_forgets_where_an_installed_snapshots_log_resumes()
    {
        // The crash-during-backfill gap: a restart that continues the log after the installed snapshot, not from where
        // it resumed, has lost the retained messages in between (the message store reads them from the log).
        FirstViolation(seed => CompactingOptions(seed) with { SnapshotOnRestart = s => s with { LogResumesAfter = s.Index, LogResumesAfterEpoch = s.Epoch } }, 400);
    }

    [Fact]
    public void Sweep_catches_compaction_of_an_entry_not_yet_committed()
    {
        var caught = FirstViolation(seed => CompactingOptions(seed) with { CompactionRule = () => new CompactsUncommittedRule() }, 400);
        Assert.Equal(ViolationKind.Invariant, caught.Kind);
    }

    [Fact]
    public void Sweep_catches_a_snapshot_that_leaves_out_the_deduplication_table()
    {
        // The harm, not only the difference in state: a retried write, applied before the snapshot, is applied again
        // where the snapshot was restored, and the final log holds it twice.
        var caught = FirstViolation(
            seed => CompactingOptions(seed) with { SnapshotFormat = () => new ForgetsDeduplicationFormat(100_000) },
            800,
            v => v.Kind == ViolationKind.DuplicateWrite);
        Assert.Equal(ViolationKind.DuplicateWrite, caught.Kind);
    }

    [Fact]
    public void Sweep_catches_a_monitor_that_promotes_an_out_of_sync_server()
    {
        FirstViolation(seed => Options(seed) with { PromotionRule = new PromoteOutOfSyncRule() });
    }

    [Fact]
    public void Sweep_catches_a_codec_that_drops_a_field_of_replicated_entries()
    {
        // Links carry bytes from the codec under test, so a field lost in encoding reaches the backups: the
        // online check of committed prefixes (SimCluster.CheckCommitted) sees their entries differ.
        var caught = FirstViolation(seed => Options(seed) with { Codec = () => new DropsEntryClientIdCodec() });
        Assert.Equal(ViolationKind.Invariant, caught.Kind);
    }

    [Fact]
    public void A_group_of_three_monitors_gives_byte_for_byte_the_same_history_for_the_same_seed()
    {
        var first = Simulator.Run(GroupOptions(4242) with { Trace = true });
        var second = Simulator.Run(GroupOptions(4242) with { Trace = true });

        Assert.True(first.History.Count > 100, $"expected a real workload, got {first.History.Count} history lines");
        Assert.Equal(first.Trace, second.Trace);
        Assert.Equal(first.History.ToJsonLines(), second.History.ToJsonLines());
    }

    [Fact]
    public void Sweep_with_a_group_of_three_monitors_finds_no_violation_and_injects_every_monitor_group_fault()
    {
        var result = SweepWithoutViolation(GroupSweepSeeds, GroupOptions);

        string[] groupKinds =
        [
            "crash-active-monitor", "crash-follower-monitor", "crash-monitor-majority", "restart-monitor",
            "pause-active-monitor", "pause-follower-monitor", "pause-monitor-majority",
            "partition-active-monitor", "partition-follower-monitor", "partition-monitor-majority",
            "isolate-former-active-monitor", "monitor-clock-drift",
            "crash-primary", "partition-primary", "partition-split",
        ];
        foreach (var kind in groupKinds)
        {
            Assert.True(result.Faults.GetValueOrDefault(kind) > 0, $"fault kind '{kind}' was never injected in {GroupSweepSeeds} seeds with three monitors");
        }
    }

    [Fact]
    public void Sweep_catches_a_new_active_monitor_that_promotes_without_waiting_out_the_old_leases()
    {
        FirstViolation(seed => GroupOptions(seed) with { MonitorLeaseRule = () => new PromotesWithoutWaitingOutOldLeasesRule() }, GroupSweepSeeds * 4);
    }

    [Fact]
    public void Sweep_catches_a_monitor_that_grants_leases_without_confirmed_leadership()
    {
        FirstViolation(seed => GroupOptions(seed) with { MonitorLeaseRule = () => new GrantsWithoutConfirmedLeadershipRule() }, GroupSweepSeeds * 4);
    }

    [Fact]
    public void Sweep_sees_two_primaries_serve_at_once_when_a_monitor_grants_leases_without_confirmed_leadership()
    {
        // The monitor's own invariant reports the grant itself; this proves the outcome check sees the harm done: the
        // former active monitor, cut off from its group, keeps leasing the primary the new active monitor replaced.
        var caught = FirstViolation(
            seed => GroupOptions(seed) with { MonitorLeaseRule = () => new GrantsWithoutConfirmedLeadershipRule() },
            GroupSweepSeeds * 4,
            v => v.Detail.StartsWith("two primaries", StringComparison.Ordinal));
        Assert.Equal(ViolationKind.Invariant, caught.Kind);
    }

    [Fact]
    public void Key_value_sweep_of_300_fault_schedules_is_linearizable()
    {
        var result = Simulator.Sweep(1, KeyValueSeeds, KeyValueOptions, cancellationToken: TestContext.Current.CancellationToken);
        output.WriteLine($"{result.Seeds} seeds in {result.ElapsedSeconds:0.0} s: {result.Operations} key-value calls, {result.Acknowledged} acknowledged");

        Assert.True(result.Violations.Count == 0, Report(result));
        Assert.Equal(KeyValueSeeds, result.Seeds);
        Assert.True(result.Acknowledged > KeyValueSeeds * 100, $"the workload is too thin to judge: {result.Acknowledged} acknowledged calls in {KeyValueSeeds} seeds");
        Assert.True(result.Faults.GetValueOrDefault("crash-primary") > 0 && result.Faults.GetValueOrDefault("partition-primary") > 0, "the sweep injected no primary crash or partition");
    }

    [Fact]
    public void A_key_value_run_records_every_call_kind_with_conflicts_and_replays_byte_for_byte()
    {
        var first = Simulator.Run(KeyValueOptions(4242) with { Trace = true });
        var second = Simulator.Run(KeyValueOptions(4242) with { Trace = true });

        Assert.True(first.Valid, string.Join("\n", first.Violations));
        Assert.Equal(first.Trace, second.Trace);
        Assert.Equal(first.KeyValueHistory, second.KeyValueHistory);
        foreach (var function in Enum.GetValues<Checking.Linearizability.KvFunction>())
        {
            Assert.Contains(first.KeyValueHistory, o => o.Function == function && o.Outcome == Checking.Linearizability.KvOutcome.Ok);
        }

        Assert.Contains(first.KeyValueHistory, o => o.Function == Checking.Linearizability.KvFunction.CompareAndSet && o.Swapped == true);
        Assert.Contains(first.KeyValueHistory, o => o.Function == Checking.Linearizability.KvFunction.CompareAndSet && o.Swapped == false);
        Assert.Empty(first.History.Operations);
    }

    [Fact]
    public void Key_value_sweep_catches_a_backup_that_serves_reads()
    {
        var caught = FirstViolation(seed => KeyValueOptions(seed) with { ReadRule = () => new BackupServesReadsRule() }, KeyValueSeeds);
        Assert.Equal(ViolationKind.NotLinearizable, caught.Kind);
    }

    [Fact]
    public void Key_value_sweep_catches_an_old_primary_that_serves_reads_after_its_lease_ran_out()
    {
        var caught = FirstViolation(seed => KeyValueOptions(seed) with { ReadRule = () => new IgnoresLeaseForReadsRule() }, KeyValueSeeds);
        Assert.Equal(ViolationKind.NotLinearizable, caught.Kind);
    }

    [Fact]
    public void Key_value_sweep_catches_a_retried_compare_and_set_applied_twice_after_a_failover()
    {
        // Increments applied twice are caught too (and sooner); this looks for a register, where only compare-and-sets
        // depend on what they find: one applied twice answers "no swap" for the swap it made the first time.
        var caught = FirstViolation(
            seed => KeyValueOptions(seed) with { DeduplicationRule = () => new IgnoresDeduplicationRule() },
            KeyValueSeeds,
            v => v.Kind == ViolationKind.NotLinearizable && v.Detail.StartsWith("key k", StringComparison.Ordinal) && v.Detail.Contains("cas(", StringComparison.Ordinal));
        Assert.Contains("cas(", caught.Detail, StringComparison.Ordinal);
    }

    /// <summary>Sweeps <paramref name="seeds"/> schedules and asserts none broke a rule and the workload was thick enough to judge.</summary>
    private SweepResult SweepWithoutViolation(int seeds, Func<int, SimulationOptions> options)
    {
        var result = Simulator.Sweep(1, seeds, options, cancellationToken: TestContext.Current.CancellationToken);
        output.WriteLine($"{result.Seeds} seeds in {result.ElapsedSeconds:0.0} s: {result.Operations} operations, {result.Acknowledged} acknowledged");
        foreach (var (kind, n) in result.Faults)
        {
            output.WriteLine($"  {kind,-30} {n,8}");
        }

        Assert.True(result.Violations.Count == 0, Report(result));
        Assert.Equal(seeds, result.Seeds);
        Assert.True(result.Acknowledged > seeds * 50, $"the workload is too thin to judge: {result.Acknowledged} acknowledged appends");
        return result;
    }

    /// <summary>
    /// Runs seeds in batches until one breaks a rule (one that <paramref name="wanted"/> accepts, when given); fails
    /// if <paramref name="seeds"/> pass.
    /// </summary>
    private SeedViolation FirstViolation(Func<int, SimulationOptions> options, int seeds, Func<SeedViolation, bool> wanted)
    {
        const int batch = 40;
        for (var from = 1; from <= seeds; from += batch)
        {
            var result = Simulator.Sweep(from, Math.Min(batch, seeds - from + 1), options, cancellationToken: TestContext.Current.CancellationToken);
            if (result.Violations.Where(wanted).OrderBy(v => v.Seed).FirstOrDefault() is { } first)
            {
                output.WriteLine($"caught at seed {first.Seed} ({from + result.Seeds - 1} seeds run): {first.Kind}: {first.Detail}");
                return first;
            }
        }

        Assert.Fail($"the broken variant survived {seeds} seeds without the violation looked for: the sweep has no teeth here");
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>Runs seeds until the first violation; fails if <paramref name="seeds"/> (default 2,000) pass.</summary>
    private SeedViolation FirstViolation(Func<int, SimulationOptions> options, int seeds = SweepSeeds)
    {
        var result = Simulator.Sweep(1, seeds, options, stopAtFirstViolation: true, cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(result.Violations.Count > 0, $"the broken variant survived {result.Seeds} seeds: the sweep has no teeth here");
        var first = result.Violations.OrderBy(v => v.Seed).First();
        output.WriteLine($"caught at seed {first.Seed} ({result.Seeds} seeds run): {first.Kind}: {first.Detail}");
        return first;
    }

    private static string Report(SweepResult result)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{result.Violations.Count} violation(s) in seeds {string.Join(", ", result.FailingSeeds.Take(20))}");
        foreach (var v in result.Violations.Take(10))
        {
            sb.AppendLine($"seed {v.Seed}: {v.Kind}: {v.Detail}");
            sb.AppendLine($"  replay: ./understudy simulate --seed {v.Seed} --trace");
        }

        return sb.ToString();
    }
}

using Understudy.Core.StateMachines;

namespace Understudy.Orchestration.Chaos;

/// <summary>The fault scenarios, as the original's scripts named them and more.</summary>
public enum ChaosScenario
{
    KillPrimary,
    KillBackup,
    KillPrimaryAndBackup,
    Chain,
    Random,
    KillAll,
    Pause,
    Monitor,
    Partition,
    Mixed,

    /// <summary>kill -9 the active monitor of a group again and again under load, the primary untouched.</summary>
    MonitorLeader,

    /// <summary>Network namespaces cut the active monitor and the primary off from the other monitors and the backups.</summary>
    MonitorPartition,

    /// <summary>Two of three monitors down: nothing may be promoted, even when the primary dies too.</summary>
    MonitorMajority,
}

/// <summary>What one chaos run does.</summary>
public sealed record ChaosOptions
{
    public required ChaosScenario Scenario { get; init; }

    public int Faults { get; init; } = 5;

    public int Seed { get; init; }

    public int Clients { get; init; } = 4;

    /// <summary>Share of calls that are reads (counts), to check reads against the one order too.</summary>
    public int ReadPercent { get; init; } = 10;

    /// <summary>
    /// The servers' state machine: the message store (appends and counts, judged against the final log) or the key-value
    /// store (a workload of gets, puts, deletes, compare-and-sets and increments, judged by the linearizability checker).
    /// </summary>
    public BuiltInStateMachine StateMachine { get; init; } = BuiltInStateMachine.Messages;

    public required string RunFolder { get; init; }

    public string Fsync { get; init; } = "always";

    public int Servers { get; init; } = 3;

    /// <summary>The monitor group's size (1, 3 or 5); null: 3 for the monitor-group scenarios, else 1.</summary>
    public int? Monitors { get; init; }

    /// <summary>The group size this run uses.</summary>
    public int MonitorCount => Monitors ?? (Scenario is ChaosScenario.MonitorLeader or ChaosScenario.MonitorPartition or ChaosScenario.MonitorMajority ? 3 : 1);

    /// <summary>
    /// How long one fault may take, from its injection to the cluster being healthy again. A fault that has not
    /// recovered by then ends the run `invalid`, saying so, instead of leaving it waiting for ever.
    /// </summary>
    public TimeSpan FaultTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>How long the final heal, the clients' last calls and the read-back of the log may take together.</summary>
    public TimeSpan FinalTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>
    /// The fault kinds to inject, in order (one per fault, <see cref="Faults"/> ignored), instead of the scenario's
    /// choice: replays a sequence exactly. Kinds are the scenario names plus `monitor-loss`.
    /// </summary>
    public IReadOnlyList<string>? Schedule { get; init; }
}

/// <summary>A fault injected: what, when (µs on the history's clock), and whether it caused a promotion.</summary>
public sealed record FaultRecord(string Kind, long Start, long End, string Detail)
{
    public long End { get; set; } = End;

    public string Detail { get; set; } = Detail;
}

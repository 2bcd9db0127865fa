using Understudy.Core.Client;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;

namespace Understudy.Simulation;

/// <summary>
/// One simulated run: the cluster's shape, how long the workload runs, and the rule objects the
/// protocol and the links use (tests inject broken ones here to prove the sweep catches them).
/// </summary>
public sealed record SimulationOptions
{
    public int Seed { get; init; }

    /// <summary>Servers, on ports 8090, 8089, 8088… as in the original project.</summary>
    public int Servers { get; init; } = 3;

    /// <summary>
    /// Monitor processes: 1 is today's single monitor over a configuration file (and today's traces, event for event);
    /// 3 or 5 is a group whose coordinator is modelled by <see cref="SimCoordinator"/>, with the group's faults.
    /// </summary>
    public int Monitors { get; init; } = 1;

    /// <summary>In a group: how long a majority's acknowledgement keeps the leader in office (the coordinator's leadership lease).</summary>
    public TimeSpan MonitorGroupLease { get; init; } = TimeSpan.FromMilliseconds(600);

    /// <summary>In a group: how often the leader confirms its leadership with the others (a Raft heartbeat).</summary>
    public TimeSpan MonitorGroupRound { get; init; } = TimeSpan.FromMilliseconds(30);

    /// <summary>
    /// The replicated service and the workload against it: the message store, judged against the final log, or the
    /// key-value store, judged by the linearizability checker (<see cref="KeyValueCalls"/>).
    /// </summary>
    public SimulatedStateMachine StateMachine { get; init; } = SimulatedStateMachine.Messages;

    /// <summary>
    /// With the key-value store: registers (k0, k1, ...) and as many counters (n0, n1, ...) the clients share. Few, so
    /// that calls on one key overlap and conflict.
    /// </summary>
    public int Keys { get; init; } = 3;

    /// <summary>
    /// With the key-value store: the percentage of gets a client also sends to a server picked at random, as a client
    /// with a stale view of the primary would. Every server but a primary that may serve must refuse them, so a read rule
    /// that lets a backup or a lease-less primary answer is exercised, not just the one primary clients believe in.
    /// </summary>
    public int StrayReadPercent { get; init; } = 20;

    /// <summary>Client workers, each with one call open at a time.</summary>
    public int Clients { get; init; } = 3;

    /// <summary>Simulated time during which clients work and faults are injected.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>After healing everything, how long the cluster has to recover before that counts as a failure.</summary>
    public TimeSpan SettleTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Mean time between injected faults.</summary>
    public TimeSpan MeanFaultInterval { get; init; } = TimeSpan.FromMilliseconds(450);

    /// <summary>How often each node's Tick runs.</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Mean client think time between calls.</summary>
    public TimeSpan MeanThinkTime { get; init; } = TimeSpan.FromMilliseconds(12);

    /// <summary>Record a line per event (for --trace).</summary>
    public bool Trace { get; init; }

    /// <summary>Hash every trace line without keeping it: two builds that behave alike give equal hashes per seed.</summary>
    public bool TraceHash { get; init; }

    public ServerOptions Server { get; init; } = new()
    {
        MaxInflightFrames = 4,

        // A catching-up backup gets no more frames in flight than an in-sync one here: the broken variants' seed budgets
        // were set with a window of 4 for both.
        CatchUpFramesInFlight = 4,
        MaxBatchEntries = 64,

        // Small enough that faults land in the middle of a catch-up, and that a catching-up backup both defers its
        // fsyncs and reaches the threshold that asks for one.
        CatchUpBatchEntries = 256,
        CatchUpSyncBytes = 4096,
    };

    /// <summary>
    /// The monitors' options. The lease stays at 500 ms here although the product's default is 800 (round 17): a
    /// simulated run is a few seconds long, and a shorter lease packs more failovers after pauses and partitions into
    /// it; the sweeps' seed budgets for the broken variants were set with 500, and two of them (compaction of an
    /// uncommitted entry, a snapshot without the deduplication table) lose their teeth at 800. The lease-safety
    /// argument does not depend on the length.
    /// </summary>
    public MonitorOptions Monitor { get; init; } = new() { LeaseDuration = TimeSpan.FromMilliseconds(500) };

    /// <summary>
    /// Every this many seeds (seed divisible by it; 0: never) the servers run with <see cref="ShortSessionIdleTimeout"/>
    /// and wall clocks up to 2 s apart, so client sessions expire during the run, log time jumps at a failover, and
    /// the checker judges expired-session refusals (unknown outcomes) like any other.
    /// </summary>
    public int ShortSessionsEvery { get; init; } = 3;

    /// <summary>The session idle timeout of the seeds <see cref="ShortSessionsEvery"/> picks.</summary>
    public TimeSpan ShortSessionIdleTimeout { get; init; } = TimeSpan.FromMilliseconds(400);

    /// <summary>True when this seed runs short sessions and skewed server wall clocks (see <see cref="ShortSessionsEvery"/>).</summary>
    public bool ShortSessions => ShortSessionsEvery > 0 && Seed % ShortSessionsEvery == 0;

    /// <summary>
    /// Every this many seeds (seed modulo it is 2; 0: never) the primary paces what it sends to backups outside the
    /// in-sync set to <see cref="TightCatchUpBytesPerSecond"/>, so catch-ups, snapshot transfers and faults during them
    /// run held back by the pacer under the checker. (The default rate is far above what a simulated catch-up sends.)
    /// </summary>
    public int TightCatchUpEvery { get; init; } = 4;

    /// <summary>The catch-up rate of the seeds <see cref="TightCatchUpEvery"/> picks: above the clients' rate, far below a backlog's.</summary>
    public long TightCatchUpBytesPerSecond { get; init; } = 64 * 1024;

    /// <summary>True when this seed paces catch-ups tightly (see <see cref="TightCatchUpEvery"/>).</summary>
    public bool TightCatchUp => TightCatchUpEvery > 0 && Seed % TightCatchUpEvery == 2;

    /// <summary>
    /// The servers' options for this seed: <see cref="Server"/>, with the short session timeout when <see cref="ShortSessions"/>
    /// and the tight catch-up rate when <see cref="TightCatchUp"/>.
    /// </summary>
    public ServerOptions ServerForSeed
    {
        get
        {
            var server = ShortSessions ? Server with { SessionIdleTimeout = ShortSessionIdleTimeout } : Server;
            return TightCatchUp ? server with { CatchUpMaxBytesPerSecond = TightCatchUpBytesPerSecond } : server;
        }
    }

    public ClientOptions Client { get; init; } = new()
    {
        RequestTimeout = TimeSpan.FromSeconds(3),
        AttemptTimeout = TimeSpan.FromMilliseconds(300),
    };

    /// <summary>
    /// Messages each server's store keeps (null: every message). With retention the log is compacted under snapshots,
    /// so a backup that fell behind is caught up by a snapshot transfer.
    /// </summary>
    public long? RetainMessages { get; init; }

    /// <summary>
    /// When <see cref="RetainMessages"/> is not set: every third seed keeps only a few messages (8 to 31) and snapshots
    /// every 16 entries, so a sweep also compacts, streams and installs snapshots.
    /// </summary>
    public bool RetentionInSomeSeeds { get; init; } = true;

    /// <summary>The options one seed runs with: those given, or with retention and frequent snapshots (see <see cref="RetentionInSomeSeeds"/>).</summary>
    public SimulationOptions ForSeed()
    {
        if (RetainMessages is not null || !RetentionInSomeSeeds || Seed % 3 != 0)
        {
            return this;
        }

        return this with
        {
            RetainMessages = 8 + (Math.Abs(Seed / 3) % 24),
            Server = Server with { SnapshotEveryEntries = 16 },
        };
    }

    /// <summary>Makes each server's compaction rule (null: the real one).</summary>
    public Func<ICompactionRule>? CompactionRule { get; init; }

    /// <summary>Makes each server's snapshot format (null: the real one).</summary>
    public Func<ISnapshotFormat>? SnapshotFormat { get; init; }

    /// <summary>
    /// What a restarting server reads of its stored snapshot (null: what was stored). Only broken variants in the tests
    /// set it, e.g. a disk that forgets where an installed snapshot's log resumes.
    /// </summary>
    public Func<ServerSnapshot, ServerSnapshot>? SnapshotOnRestart { get; init; }

    /// <summary>Makes each server's commit rule (null: the real one).</summary>
    public Func<ICommitRule>? CommitRule { get; init; }

    /// <summary>The monitor's promotion rule (null: the real one).</summary>
    public IPromotionRule? PromotionRule { get; init; }

    /// <summary>Makes each monitor's lease rule (null: the real one).</summary>
    public Func<IMonitorLeaseRule>? MonitorLeaseRule { get; init; }

    /// <summary>Makes each server's read rule (null: the real one, <see cref="LeasedPrimaryReadRule"/>).</summary>
    public Func<IReadRule>? ReadRule { get; init; }

    /// <summary>Makes each server's rule for reads answered off its loop (null: the same as <see cref="ReadRule"/>).</summary>
    public Func<IReadRule>? OffLoopReadRule { get; init; }

    /// <summary>Makes each server's key-value state machine when <see cref="StateMachine"/> is the key-value store (null: <see cref="Core.StateMachines.KeyValue.KeyValueStore"/>).</summary>
    public Func<IStateMachine>? KeyValueMachine { get; init; }

    /// <summary>Makes each server's deduplication rule (null: the real one, <see cref="TableDeduplicationRule"/>).</summary>
    public Func<IDeduplicationRule>? DeduplicationRule { get; init; }

    /// <summary>Makes the codec every simulated link encodes and decodes frames with (null: the real one, <see cref="FrameCodec"/>).</summary>
    public Func<IFrameCodec>? Codec { get; init; }

    /// <summary>Throws if the run cannot be simulated as asked.</summary>
    public void Validate()
    {
        if (Monitors is not (1 or 3 or 5))
        {
            throw new ArgumentException($"a monitor group has 1, 3 or 5 members, not {Monitors}");
        }

        if (MonitorGroupRound <= TimeSpan.Zero || MonitorGroupLease <= MonitorGroupRound * 2)
        {
            throw new ArgumentException($"the group's leadership lease ({MonitorGroupLease.TotalMilliseconds} ms) must outlast two rounds ({MonitorGroupRound.TotalMilliseconds} ms each)");
        }

        if (Keys < 1 || StrayReadPercent is < 0 or > 100)
        {
            throw new ArgumentException($"the key-value workload needs at least one key (got {Keys}) and a stray-read percentage from 0 to 100 (got {StrayReadPercent})");
        }

        if (Monitor.MaxClockDrift >= MonitorGroupLease)
        {
            throw new ArgumentException($"the clock drift allowed ({Monitor.MaxClockDrift.TotalMilliseconds} ms) must be less than the group's leadership lease ({MonitorGroupLease.TotalMilliseconds} ms)");
        }
    }
}

/// <summary>Which state machine the simulated servers run.</summary>
public enum SimulatedStateMachine
{
    /// <summary>The message store (appends, reads, counts), judged against the final log by <see cref="Checking.HistoryChecker"/>.</summary>
    Messages,

    /// <summary>The key-value store (get, put, delete, compare-and-set, increment), judged by <see cref="Checking.Linearizability.LinearizabilityChecker"/>.</summary>
    KeyValue,
}

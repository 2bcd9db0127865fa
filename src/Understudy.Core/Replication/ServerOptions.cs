using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>How a server paces heartbeats, replication and in-sync decisions. Validated at start.</summary>
public sealed record ServerOptions
{
    /// <summary>How often the server tells the monitor it is alive.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Fraction of each granted lease the primary relies on. The rest covers clock-rate drift between
    /// the primary and the monitor, so the primary always stops serving before the monitor thinks it may.
    /// </summary>
    public double LeaseSafetyFactor { get; init; } = 0.9;

    /// <summary>A backup with unacknowledged entries that makes no progress this long is asked out of the in-sync set.</summary>
    public TimeSpan ReplicaLagTimeout { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>
    /// A gap this long between the server's own ticks means it was itself stalled; as primary it then restarts
    /// its backups' lag and resend clocks instead of blaming them for the time it was not running.
    /// </summary>
    public TimeSpan SelfStallThreshold { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Frames unanswered this long are presumed lost: the primary probes and resends.</summary>
    public TimeSpan ResendTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How often an unanswered in-sync change request is sent again.</summary>
    public TimeSpan InSyncChangeRetry { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a planned switchover may wait for the target to catch up before it is called off.</summary>
    public TimeSpan SwitchoverTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Most entries in one replication frame.</summary>
    public int MaxBatchEntries { get; init; } = 1024;

    /// <summary>
    /// About the most bytes of entries in one replication frame (a single larger entry still goes, alone). 60 KiB keeps
    /// a frame, header included, inside one 64 KiB chunk of a connection's send buffer and under the 85,000 bytes at
    /// which an array goes to the large object heap, which the collector does not compact: with 1 MiB frames each
    /// catch-up left the primary's large object heap 6-13 MB larger for good (docs/BENCHMARKS.md, round 29).
    /// </summary>
    public int MaxBatchBytes { get; init; } = 60 * 1024;

    /// <summary>Frames sent to one backup and not yet acknowledged.</summary>
    public int MaxInflightFrames { get; init; } = 8;

    /// <summary>
    /// Frames sent to a backup outside the in-sync set (one catching up) and not yet acknowledged; the larger of this and
    /// <see cref="MaxInflightFrames"/> counts. A catch-up frame is at most <see cref="MaxBatchBytes"/>, so the stream
    /// needs this many in flight to cover a round trip at the pacer's rate and the backup's fsync of each
    /// <see cref="CatchUpSyncBytes"/>: 128 frames of 60 KiB are 7.5 MiB, about the 8 frames of 1 MiB that were in flight
    /// when frames were larger.
    /// </summary>
    public int CatchUpFramesInFlight { get; init; } = 128;

    /// <summary>
    /// Frames outstanding with one in-sync backup after which a frame that would not be full waits (1 to
    /// <see cref="MaxInflightFrames"/>; null, the default: <see cref="MaxInflightFrames"/>, no difference). With a small
    /// window the writes that arrive while a frame is on the wire wait in the log and all go in the next frame, so each
    /// frame's fixed cost (a send, the backup's read, loop turn, log write and answer) is paid once for more writes (a
    /// Kafka follower, likewise, has one fetch outstanding). Full frames (a backlog) and backups outside the in-sync set
    /// always get the whole <see cref="MaxInflightFrames"/>. Not the default: round 19 measured no gain with 64
    /// one-request connections, where frames already carried about a dozen writes each (docs/BENCHMARKS.md).
    /// </summary>
    public int? InSyncFramesInFlight { get; init; }

    /// <summary>
    /// Most entries in one frame to a backup more than <see cref="MaxBatchEntries"/> behind (a restarted or wiped one
    /// catching up); <see cref="MaxBatchBytes"/> still bounds it. Small entries would otherwise cap a catch-up frame
    /// far below <see cref="MaxBatchBytes"/> (1024 entries of 64-byte writes are about 115 KiB), and each frame costs
    /// a round trip of the window.
    /// </summary>
    public int CatchUpBatchEntries { get; init; } = 8192;

    /// <summary>
    /// A backup catching up (the primary has committed past the frame it received) acknowledges each frame as soon as
    /// it has checked and appended it, and asks for an fsync only once this many bytes of entries arrived unsynced
    /// (or its catch-up ends). Its match index, which commits and the in-sync set count, still only covers what is on
    /// disk; only the primary's window moves sooner, so the stream is not held up by an fsync per round trip.
    /// </summary>
    public int CatchUpSyncBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>
    /// Most bytes of entries and snapshot chunks per second the primary sends to all backups outside the in-sync set
    /// together (a restarted, wiped or new server copying its backlog); 0: unlimited. No acknowledged write waits for
    /// such a backup, so client traffic comes first and the catch-up gets this much (<see cref="CatchUpPacer"/>). In-sync
    /// backups are never paced. The default comes from wiped backups' catch-ups on a quiet 2-core machine: at 52 MiB/s
    /// the clients kept 60 and 63 % of their throughput, at 56 only 49 %, unpaced about 40 % (docs/BENCHMARKS.md,
    /// rounds 17 and 24).
    /// </summary>
    public long CatchUpMaxBytesPerSecond { get; init; } = DefaultCatchUpMaxBytesPerSecond;

    /// <summary>The default of <see cref="CatchUpMaxBytesPerSecond"/>: 52 MiB/s.</summary>
    public const long DefaultCatchUpMaxBytesPerSecond = 52L * 1024 * 1024;

    /// <summary>How many servers (primary included) must hold a write before it is acknowledged.</summary>
    public int MinInSync { get; init; } = 1;

    /// <summary>A backup this close to the end of the log (and holding every committed entry) is asked back into the in-sync set.</summary>
    public int CatchUpSlack { get; init; } = 256;

    /// <summary>The server's claim to be promoted; null means its port, as in the original project.</summary>
    public int? Priority { get; init; }

    /// <summary>True when the log is fsynced before a write counts (fsync=always); reported to the monitor.</summary>
    public bool Durable { get; init; } = true;

    /// <summary>Clients whose deduplication results are kept.</summary>
    public int MaxClientSessions { get; init; } = 100_000;

    /// <summary>
    /// A client session whose last write is this much older, in log time (the primary's clock stamped into entries),
    /// than the entry being applied expires, the same on every replica; a retry from it is refused with "session
    /// expired" rather than applied twice. <see cref="Timeout.InfiniteTimeSpan"/>: never.
    /// </summary>
    public TimeSpan SessionIdleTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// A snapshot of the replicated state is taken after this many applied entries (0: never), so that a restart
    /// replays only the entries after it and the log below it can be compacted.
    /// </summary>
    public long SnapshotEveryEntries { get; init; } = 100_000;

    /// <summary>Bytes of snapshot per chunk sent to a backup that needs one (at most <see cref="SnapshotChunk.MaxDataBytes"/>).</summary>
    public int SnapshotChunkBytes { get; init; } = 256 * 1024;

    /// <summary>Snapshot chunks sent to one backup and not yet acknowledged: enough to keep the link busy, few enough to bound memory.</summary>
    public int SnapshotChunksInFlight { get; init; } = 4;

    /// <summary>Most committed, durable entries kept in memory; older ones are read back from disk when needed.</summary>
    public int LogWindowEntries { get; init; } = 64 * 1024;

    /// <summary>Most bytes of committed, durable entries kept in memory (whichever of the two limits comes first).</summary>
    public long LogWindowBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Process id and HTTP port, reported in heartbeats for status and dashboards.</summary>
    public int ProcessId { get; init; }

    public int HttpPort { get; init; }

    /// <summary>Throws with a readable message when a value is out of range.</summary>
    public void Validate()
    {
        static void Positive(TimeSpan value, string name)
        {
            if (value <= TimeSpan.Zero)
            {
                throw new ArgumentException($"{name} must be positive (got {value.TotalMilliseconds} ms)");
            }
        }

        Positive(HeartbeatInterval, nameof(HeartbeatInterval));
        Positive(ReplicaLagTimeout, nameof(ReplicaLagTimeout));
        Positive(ResendTimeout, nameof(ResendTimeout));
        Positive(InSyncChangeRetry, nameof(InSyncChangeRetry));
        Positive(SwitchoverTimeout, nameof(SwitchoverTimeout));
        Positive(SelfStallThreshold, nameof(SelfStallThreshold));
        if (LeaseSafetyFactor is <= 0 or > 1)
        {
            throw new ArgumentException($"LeaseSafetyFactor must be in (0, 1] (got {LeaseSafetyFactor})");
        }

        if (MaxBatchEntries < 1 || MaxBatchBytes < 1 || MaxInflightFrames < 1 || CatchUpFramesInFlight < 1 || CatchUpBatchEntries < 1 || CatchUpSyncBytes < 1)
        {
            throw new ArgumentException($"batch sizes, in-flight frames and the catch-up batch and sync sizes must be at least 1 (got {MaxBatchEntries}, {MaxBatchBytes}, {MaxInflightFrames}, {CatchUpFramesInFlight}, {CatchUpBatchEntries}, {CatchUpSyncBytes})");
        }

        if (InSyncFramesInFlight is < 1 || InSyncFramesInFlight > MaxInflightFrames)
        {
            throw new ArgumentException($"frames in flight to an in-sync backup must be 1..{MaxInflightFrames} (MaxInflightFrames; got {InSyncFramesInFlight})");
        }

        if (CatchUpMaxBytesPerSecond < 0)
        {
            throw new ArgumentException($"the catch-up rate must be 0 (unlimited) or more bytes per second (got {CatchUpMaxBytesPerSecond})");
        }

        if (SnapshotChunkBytes < 1 || SnapshotChunkBytes > SnapshotChunk.MaxDataBytes || SnapshotChunksInFlight < 1)
        {
            throw new ArgumentException($"snapshot chunks must be 1..{SnapshotChunk.MaxDataBytes} bytes with at least 1 in flight (got {SnapshotChunkBytes} bytes, {SnapshotChunksInFlight} in flight)");
        }

        if (SnapshotEveryEntries < 0 || LogWindowEntries < 1 || LogWindowBytes < 1)
        {
            throw new ArgumentException($"snapshot interval must be >= 0 and the log window at least 1 entry and 1 byte (got {SnapshotEveryEntries}, {LogWindowEntries}, {LogWindowBytes})");
        }

        if (SessionIdleTimeout != Timeout.InfiniteTimeSpan && SessionIdleTimeout < TimeSpan.FromMilliseconds(1))
        {
            throw new ArgumentException($"the session idle timeout must be at least 1 ms (got {SessionIdleTimeout})");
        }

        if (MinInSync < 1)
        {
            throw new ArgumentException($"min-in-sync must be at least 1 (got {MinInSync})");
        }
    }
}

namespace Understudy.Storage;

/// <summary>When the log calls fsync, and so what a <see cref="DurableLogOptions.Synced"/> report promises.</summary>
public enum FsyncPolicy
{
    /// <summary>
    /// fsync before every Synced report (coalesced: one fsync answers every request queued behind it).
    /// A reported index survives a power cut. The default, and the only policy that keeps the rule
    /// "no acknowledged write is lost" (docs/ARCHITECTURE.md) when every in-sync server loses power at once.
    /// </summary>
    Always,

    /// <summary>
    /// Report Synced once the write reaches the operating system; fsync on a timer
    /// (<see cref="DurableLogOptions.BatchInterval"/>). A killed process loses nothing, but writes
    /// acknowledged in the last interval are lost if every in-sync server's machine crashes or loses power
    /// at once. Faster, and an honest trade for replicas on independent machines.
    /// </summary>
    Batch,

    /// <summary>
    /// Report Synced once the write reaches the operating system and never fsync. Survives a killed process,
    /// not a machine crash. For tests, benchmarks and throwaway clusters.
    /// </summary>
    Never,
}

/// <summary>How a <see cref="DurableLog"/> lays out its files and when it makes them durable.</summary>
public sealed class DurableLogOptions
{
    /// <summary>
    /// 64 MiB: large enough that rolling over (an fsync and a folder fsync) is rare and that a long log is few
    /// files (20 M entries of 1 KiB are about 300 segments, each keeping only a sparse index in memory), small
    /// enough that compaction, which removes whole segments, frees space in useful steps.
    /// </summary>
    public const long DefaultSegmentSize = 64L * 1024 * 1024;

    /// <summary>Smallest segment size accepted (tests use small segments to cross boundaries).</summary>
    public const long MinSegmentSize = 1024;

    /// <summary>Largest segment size accepted: recovery reads a segment into one buffer.</summary>
    public const long MaxSegmentSize = 1024L * 1024 * 1024;

    /// <summary>A segment is closed once the next record would take it past this many bytes (one record always fits).</summary>
    public long SegmentSize { get; init; } = DefaultSegmentSize;

    public FsyncPolicy FsyncPolicy { get; init; } = FsyncPolicy.Always;

    /// <summary>With <see cref="FsyncPolicy.Batch"/>: how often written data is fsynced. Default 10 ms.</summary>
    public TimeSpan BatchInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Called as <c>Synced(throughIndex, generation)</c> after each sync (see <see cref="FsyncPolicy"/>) with
    /// the latest <see cref="DurableLog.RequestSync"/> answered. Runs on the log's writer task: post it to
    /// your own loop and return; don't block. Reports for a generation older than your current one are stale
    /// (a truncation happened in between) and must be ignored, as <c>ServerNode.OnLogSynced</c> does.
    /// </summary>
    public Action<long, long>? Synced { get; init; }

    /// <summary>
    /// Called once, on the writer task, when the disk fails (full, read-only, I/O error). The log then stops:
    /// nothing more is written or reported, and every later call throws the same exception. The owner must
    /// stop acknowledging writes (a server should exit and let the monitor promote another).
    /// </summary>
    public Action<StorageException>? Faulted { get; init; }

    /// <summary>Default for <see cref="ReadHandles"/>.</summary>
    public const int DefaultReadHandles = 8;

    /// <summary>
    /// Segment files <see cref="DurableLog.Read"/> keeps open between reads (least recently used closed first):
    /// readers usually work near the tail or walk forward, so a few handles serve them without an open per read.
    /// </summary>
    public int ReadHandles { get; init; } = DefaultReadHandles;

    /// <summary>Test hook: runs on the writer just before each fsync (to hold one open and watch requests pile up).</summary>
    internal Action? BeforeFsync { get; init; }

    internal void Validate()
    {
        if (SegmentSize is < MinSegmentSize or > MaxSegmentSize)
        {
            throw new ArgumentOutOfRangeException(nameof(SegmentSize), SegmentSize, $"segment size must be between {MinSegmentSize} and {MaxSegmentSize} bytes");
        }

        if (!Enum.IsDefined(FsyncPolicy))
        {
            throw new ArgumentOutOfRangeException(nameof(FsyncPolicy), FsyncPolicy, "unknown fsync policy");
        }

        if (ReadHandles < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(ReadHandles), ReadHandles, "at least one read handle is needed");
        }

        if (BatchInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchInterval), BatchInterval, "the batch fsync interval must be positive");
        }
    }
}

/// <summary>A snapshot of a <see cref="DurableLog"/>'s counters, for metrics.</summary>
/// <param name="BytesWritten">Bytes written to segment files since open.</param>
/// <param name="FsyncCount">fsyncs of segment files since open (rollovers and truncations included).</param>
/// <param name="TotalFsyncTime">Time spent in those fsyncs.</param>
/// <param name="LastFsyncTime">How long the latest one took.</param>
/// <param name="SegmentCount">Segment files in the folder.</param>
/// <param name="LastIndex">The last index written to the operating system.</param>
/// <param name="DurableIndex">The last index on disk: fsynced (with <see cref="FsyncPolicy.Never"/>, written).</param>
public readonly record struct DurableLogStats(
    long BytesWritten,
    long FsyncCount,
    TimeSpan TotalFsyncTime,
    TimeSpan LastFsyncTime,
    int SegmentCount,
    long LastIndex,
    long DurableIndex)
{
    /// <summary>The first index still on disk (entries below were compacted away); <see cref="LastIndex"/> + 1 when empty.</summary>
    public long FirstIndex { get; init; }

    /// <summary>Bytes in the segment files now.</summary>
    public long BytesOnDisk { get; init; }

    /// <summary>Segment files removed by compaction (and resets) since open.</summary>
    public long RemovedSegments { get; init; }

    /// <summary>Index of the newest snapshot on disk, 0 when none.</summary>
    public long LastSnapshotIndex { get; init; }

    /// <summary>Size of that snapshot's file in bytes, 0 when none.</summary>
    public long LastSnapshotBytes { get; init; }

    /// <summary>When that snapshot was written (UTC), null when none.</summary>
    public DateTimeOffset? LastSnapshotTime { get; init; }
}

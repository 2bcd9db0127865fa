using System.Buffers;
using Understudy.Core.StateMachines;

namespace Understudy.Core.Replication;

/// <summary>What bounds compaction: the log may lose entries below the lowest of these.</summary>
/// <param name="SnapshotIndex">The newest stored snapshot's index: entries above it are in no snapshot.</param>
/// <param name="RetainedFrom">The lowest index the state machine (in the stored snapshot and live) still reads.</param>
/// <param name="InSyncNeed">The lowest index an in-sync backup may still be sent.</param>
/// <param name="CommitIndex">The commit index: nothing above it may go.</param>
/// <param name="LastIndex">The log's last index.</param>
public readonly record struct CompactionLimits(long SnapshotIndex, long RetainedFrom, long InSyncNeed, long CommitIndex, long LastIndex);

/// <summary>
/// Where compaction stops. Production uses <see cref="SafeCompactionRule"/>; the simulator's tests inject a broken one
/// to prove the sweep notices compaction of an entry not yet committed.
/// </summary>
public interface ICompactionRule
{
    /// <summary>The index below which the log may be compacted.</summary>
    long CompactBelow(in CompactionLimits limits);
}

/// <summary>Below every limit: the stored snapshot, what the machine reads, what in-sync backups need, the commit index.</summary>
public sealed class SafeCompactionRule : ICompactionRule
{
    public static SafeCompactionRule Instance { get; } = new();

    public long CompactBelow(in CompactionLimits limits) =>
        Math.Min(Math.Min(limits.SnapshotIndex + 1, limits.RetainedFrom), Math.Min(limits.InSyncNeed, limits.CommitIndex + 1));
}

/// <summary>
/// How the node serializes its replicated state into a snapshot. Production uses <see cref="WholeStateSnapshotFormat"/>;
/// the simulator's tests inject one that leaves out the deduplication table, to prove the sweep notices.
/// </summary>
public interface ISnapshotFormat
{
    void Write(ReplicatedState state, IBufferWriter<byte> writer);
}

/// <summary>Everything <see cref="ReplicatedState.WriteSnapshot"/> writes: applied index, deduplication table, machine.</summary>
public sealed class WholeStateSnapshotFormat : ISnapshotFormat
{
    public static WholeStateSnapshotFormat Instance { get; } = new();

    public void Write(ReplicatedState state, IBufferWriter<byte> writer) => state.WriteSnapshot(writer);
}

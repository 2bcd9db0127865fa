using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Simulation.Tests;

/// <summary>Acknowledges a write once the primary alone has it on disk: backups may not have it yet.</summary>
internal sealed class AckBeforeBackupsRule : ICommitRule
{
    public long ComputeCommitIndex(CommitView view) => Math.Max(view.CommitIndex, view.OwnDurableIndex);
}

/// <summary>
/// The primary stops waiting for a backup that has not answered for two heartbeat intervals, on its own,
/// without the monitor's approval: the monitor still counts that backup as in sync and may promote it.
/// </summary>
internal sealed class PrimaryDropsBackupAloneRule : ICommitRule
{
    public long ComputeCommitIndex(CommitView view)
    {
        var commit = view.OwnDurableIndex;
        var patience = view.TimestampFrequency / 10;
        foreach (var member in view.RequiredMembers)
        {
            if (member == view.Self)
            {
                continue;
            }

            var f = view.Follower(member);
            if (f is null || f.Disconnected || f.LastAckAt == long.MinValue || view.Now - f.LastAckAt > patience)
            {
                continue;
            }

            commit = Math.Min(commit, f.MatchIndex);
        }

        return Math.Max(commit, view.CommitIndex);
    }
}

/// <summary>Promotes the highest-priority alive server whether or not it is in sync.</summary>
internal sealed class PromoteOutOfSyncRule : IPromotionRule
{
    public NodeAddress ChooseCandidate(PromotionView view)
    {
        var best = view.Members
            .Where(m => m.Alive && !(m.Address == view.FailedPrimary && m.ReportedRole == ServerRole.Primary))
            .OrderByDescending(m => m.Priority)
            .FirstOrDefault();
        return best?.Address ?? NodeAddress.None;
    }
}

/// <summary>
/// A newly active monitor that promotes as soon as it is active, without waiting until every lease an earlier active
/// monitor could have granted has run out: the old primary may still serve beside the new one.
/// </summary>
internal sealed class PromotesWithoutWaitingOutOldLeasesRule : IMonitorLeaseRule
{
    public bool MayGrant(in LeaseGrantView view) => ConfirmedLeadershipLeaseRule.Instance.MayGrant(view);

    public long OthersMayBePromotedAt(in LeaseWaitView view) => view.ActiveSince;
}

/// <summary>
/// A monitor that grants leases whenever it believes it is active, whether or not a quorum still confirms its
/// leadership: cut off from its group, it keeps leasing a primary the new active monitor has replaced.
/// </summary>
internal sealed class GrantsWithoutConfirmedLeadershipRule : IMonitorLeaseRule
{
    public bool MayGrant(in LeaseGrantView view) => view.Leadership.IsActive;

    public long OthersMayBePromotedAt(in LeaseWaitView view) => ConfirmedLeadershipLeaseRule.Instance.OthersMayBePromotedAt(view);
}

/// <summary>Compacts everything written, as if written meant committed: entries not yet committed leave the disk.</summary>
internal sealed class CompactsUncommittedRule : ICompactionRule
{
    public long CompactBelow(in CompactionLimits limits) => Math.Min(limits.InSyncNeed, limits.LastIndex + 1);
}

/// <summary>
/// Snapshots the applied index and the machine but not the deduplication table: a server restored from it (a restart,
/// or a backup catching up) applies a retried write again.
/// </summary>
internal sealed class ForgetsDeduplicationFormat(int maxSessions) : ISnapshotFormat
{
    public void Write(Understudy.Core.StateMachines.ReplicatedState state, System.Buffers.IBufferWriter<byte> writer)
    {
        // A state with the same machine and an empty table writes the table empty; the applied index is the real one.
        var header = writer.GetSpan(8);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(header, state.AppliedIndex);
        writer.Advance(8);
        System.Buffers.BuffersExtensions.Write(writer, new Understudy.Core.StateMachines.ReplicatedState(state.Machine, maxSessions).SnapshotBytes().AsSpan(8));
    }
}

using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// Decides how far the primary's log is committed (safe to apply and acknowledge). It is the one place
/// that says whose copies a write needs, so tests can swap in a broken rule and watch the simulator catch it.
/// </summary>
public interface ICommitRule
{
    /// <summary>The new commit index; never below <see cref="CommitView.CommitIndex"/>.</summary>
    long ComputeCommitIndex(CommitView view);
}

/// <summary>What a commit rule may look at: the primary's state, read-only.</summary>
public sealed class CommitView
{
    private readonly ServerNode _node;

    internal CommitView(ServerNode node) => _node = node;

    public NodeAddress Self => _node.Self;

    public ClusterConfig Config => _node.Config;

    public long LastIndex => _node.LastIndex;

    /// <summary>How far the primary's own log is on disk.</summary>
    public long OwnDurableIndex => _node.DurableIndex;

    public long CommitIndex => _node.CommitIndex;

    public int MinInSync => _node.Options.MinInSync;

    public long Now => _node.Now;

    public long TimestampFrequency => _node.TimestampFrequency;

    /// <summary>Backups asked into the in-sync set whose answer is not yet known: they already count.</summary>
    public IReadOnlyCollection<NodeAddress> PendingAdds => _node.PendingAddMembers;

    /// <summary>The primary's view of a backup, or null if it has never been contacted.</summary>
    public FollowerProgress? Follower(NodeAddress address) => _node.Follower(address);

    /// <summary>Every member whose copy a write needs: the in-sync set as last confirmed by the monitor, and pending additions.</summary>
    public IEnumerable<NodeAddress> RequiredMembers => Config.InSync.Concat(PendingAdds).Distinct();
}

/// <summary>
/// The rule: an entry is committed when every member of the in-sync set (and every pending addition)
/// holds it durably, and the in-sync set has at least min-in-sync members. The set only shrinks through
/// the monitor, so a promoted backup always holds every acknowledged write.
/// </summary>
public sealed class AllInSyncCommitRule : ICommitRule
{
    public static readonly AllInSyncCommitRule Instance = new();

    public long ComputeCommitIndex(CommitView view)
    {
        if (view.Config.InSync.Length < view.MinInSync)
        {
            return view.CommitIndex;
        }

        var commit = view.OwnDurableIndex;
        foreach (var member in view.RequiredMembers)
        {
            if (member == view.Self)
            {
                continue;
            }

            commit = Math.Min(commit, view.Follower(member)?.MatchIndex ?? 0);
        }

        return Math.Max(commit, view.CommitIndex);
    }
}

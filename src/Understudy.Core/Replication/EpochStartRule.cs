namespace Understudy.Core.Replication;

/// <summary>
/// Decides when a newly promoted primary may send its backups anything of its epoch. A promotion writes no epoch file:
/// the epoch is durable on the new primary once the epoch's first entry is (a restart recovers the highest epoch of
/// its log), and until then a crash could bring this server back without it, and the monitor hands the promotion of an
/// epoch a restarted process has not heard of to that process again. Had it sent entries of the epoch before, a backup
/// would hold entries the second life writes differently at the same indexes and epoch. It is the one place that says
/// so, so tests can swap in a broken rule and watch the simulator catch it.
/// </summary>
public interface IEpochStartRule
{
    /// <summary>Whether the primary may send frames of its epoch, whose first entry is at <paramref name="epochStartIndex"/>.</summary>
    /// <param name="epochStartIndex">The epoch's first entry.</param>
    /// <param name="ownDurableIndex">How far this server's own log is on disk.</param>
    bool MaySend(long epochStartIndex, long ownDurableIndex);
}

/// <summary>The rule: nothing of the epoch leaves the server before the epoch's first entry is on its disk.</summary>
public sealed class DurableEpochStartRule : IEpochStartRule
{
    public static readonly DurableEpochStartRule Instance = new();

    public bool MaySend(long epochStartIndex, long ownDurableIndex) => ownDurableIndex >= epochStartIndex;
}

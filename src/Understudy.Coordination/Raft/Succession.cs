namespace Understudy.Coordination.Raft;

/// <summary>
/// Who of a monitor group may stand for election, so that after the leader dies one survivor stands at a time and
/// two never split the vote. Pure: ranks and elapsed times in, a decision out.
/// </summary>
/// <remarks>
/// <para>Members are ranked as their election windows are (<see cref="RaftCoordinatorOptions.ElectionWindowOf"/>: by
/// Raft address, the same order on every member). The <b>line of succession</b> after a leader is every other
/// member from the highest rank down. The first in line, the successor, always may stand; the others stand by
/// (DotNext's standby mode: they vote and acknowledge, never become candidates) while the leader is heard.</para>
/// <para>Highest rank first because that member has the longest election window: by the time its own timeout runs
/// out, the voters' shorter timeouts have run out too, so its pre-vote is granted at the first attempt. A successor
/// with the shortest window would be refused by voters that heard the leader as late as it did, and retry one
/// timeout later.</para>
/// <para><b>Liveness.</b> When the leader has not been heard for <c>position × chance</c>, the member at that
/// position in line may stand as well: one at a time, each after the one before it had a whole chance (its
/// timeout and an election), so a dead successor, or one whose log is behind and cannot win votes, holds the group
/// up only for a while. A member that has heard no leader since it started uses the same line with no member left
/// out. Raft's safety does not depend on who stands, and a member standing by votes under the same rule as any
/// other (not while it has heard the leader within its own timeout), so the leases are untouched.</para>
/// </remarks>
internal sealed class Succession
{
    private readonly int _size;
    private readonly TimeSpan _chance;

    /// <param name="size">How many members the group has.</param>
    /// <param name="chance">How long one member in line has to win before the next may stand.</param>
    public Succession(int size, TimeSpan chance)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(chance, TimeSpan.Zero);
        _size = size;
        _chance = chance;
    }

    /// <summary>
    /// The place of the member ranked <paramref name="rank"/> in the line after the leader ranked
    /// <paramref name="leader"/> (null: none heard since this member started): 0 for the successor. The leader
    /// itself has no place; it gets the last.
    /// </summary>
    public int PositionOf(int rank, int? leader)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, _size);
        if (rank == leader)
        {
            return _size - 1;
        }

        // From the highest rank down, the leader skipped.
        var position = _size - 1 - rank;
        return leader is { } l && l > rank ? position - 1 : position;
    }

    /// <summary>
    /// Whether the member ranked <paramref name="rank"/> may stand for election, its last leader ranked
    /// <paramref name="leader"/> and last heard <paramref name="silence"/> ago.
    /// </summary>
    public bool MayStand(int rank, int? leader, TimeSpan silence) => silence >= _chance * PositionOf(rank, leader);
}

using System.Diagnostics;
using System.Net;
using DotNext.Net.Cluster.Consensus.Raft;

namespace Understudy.Coordination.Raft;

// Only the member next in line stands for election after the leader dies (see Succession): the others stay in
// DotNext's standby mode while the leader is heard, and leave it one at a time when it is not.
public sealed partial class RaftCoordinator
{
    private Succession? _succession;
    private Dictionary<EndPoint, int> _rankByRaft = [];
    private int _selfRank;

    // The rank of the leader this member last followed (null: none since it started), and when the loop last saw it
    // named by DotNext; both touched by the loop only.
    private int? _lastLeaderRank;
    private long _leaderSeenAt;

    /// <summary>Whether this member stands by (votes, never stands for election); for tests and status.</summary>
    internal bool StandsBy => _cluster is { } cluster && cluster.Standby;

    /// <summary>Whether a round from the leader found this follower level (nothing to append) within the last upper election timeout; for tests.</summary>
    internal bool IsLevelWithLeader => Volatile.Read(ref _inSyncAt) is var heard and not 0 && Stopwatch.GetElapsedTime(heard) < _options.UpperElectionTimeout;

    // Called once DotNext has started, before its follower timer (at least the lower election timeout) can run out.
    private async Task EnterSuccessionAsync(RaftCluster cluster, IReadOnlyDictionary<EndPoint, MonitorGroupMember> byRaft, CancellationToken cancellationToken)
    {
        _rankByRaft = byRaft.ToDictionary(p => p.Key, p => _options.RankOf(p.Value));
        _selfRank = _options.RankOf(_options.Self);
        _succession = new Succession(_rankByRaft.Count, _options.SuccessorChance);
        _leaderSeenAt = Stopwatch.GetTimestamp();

        // A member that starts has heard no leader: it takes its place in the full line, so a fresh group's first
        // election has one candidate too, and a member restarted while the leader is dead does not stand against
        // the successor.
        if (_succession.PositionOf(_selfRank, null) > 0 && await cluster.EnableStandbyModeAsync(cancellationToken).ConfigureAwait(false))
        {
            _logger.RaftStandingBy(_options.Self.Heartbeat, Protocol.NodeAddress.None);
        }
    }

    // Run by the loop (one call at a time, so DotNext's mode changes never race each other).
    private async Task KeepSuccessionAsync(RaftCluster cluster, CancellationToken cancellationToken)
    {
        if (_succession is not { } succession)
        {
            return;
        }

        var leader = cluster.Leader;
        if (leader is { IsRemote: false })
        {
            // Leading; a member standing by is never elected.
            return;
        }

        var now = Stopwatch.GetTimestamp();
        if (leader is not null && _rankByRaft.TryGetValue(leader.EndPoint, out var rank))
        {
            _lastLeaderRank = rank;
            _leaderSeenAt = now;
        }

        // DotNext names the leader until a standing-by member's consensus timeout (about its lower election timeout)
        // or a follower's election timeout passes without a heartbeat; the silence counts from the last tick it did.
        var silence = leader is null ? Stopwatch.GetElapsedTime(_leaderSeenAt, now) : TimeSpan.Zero;
        var mayStand = succession.MayStand(_selfRank, _lastLeaderRank, silence);
        try
        {
            await ChangeModeAsync(cluster, leader, mayStand, succession.PositionOf(_selfRank, _lastLeaderRank), silence, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The loop must go on confirming (a leader never gets here); the next tick tries again.
            _logger.RaftHandlerFailed(e, nameof(KeepSuccessionAsync));
        }
    }

    private async Task ChangeModeAsync(RaftCluster cluster, RaftClusterMember? leader, bool mayStand, int position, TimeSpan silence, CancellationToken cancellationToken)
    {
        if (mayStand && cluster.Standby)
        {
            if (await cluster.RevertToNormalModeAsync(cancellationToken).ConfigureAwait(false))
            {
                _logger.RaftMayStand(_options.Self.Heartbeat, position, (long)silence.TotalMilliseconds);
            }
        }
        else if (!mayStand && !cluster.Standby && leader is { IsRemote: true })
        {
            // Only while following: DotNext's standby mode would also end a candidacy or a leadership, and a member
            // that stands while no leader is known is either in line or has waited its turn. Should the leader die and
            // this member win between the check and the call, it would step down: the cost is one more election,
            // never safety (Raft's safety does not depend on who stands).
            var leading = HeartbeatOf(leader.EndPoint);
            if (await cluster.EnableStandbyModeAsync(cancellationToken).ConfigureAwait(false))
            {
                _logger.RaftStandingBy(_options.Self.Heartbeat, leading);
            }
        }
    }
}

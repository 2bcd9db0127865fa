using System.Diagnostics;
using System.Net;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using Understudy.Protocol;

namespace Understudy.Coordination.Raft;

// The coordinator's own heartbeat: confirmation rounds on the leader, and the <see cref="Leadership"/> view every member publishes.
public sealed partial class RaftCoordinator
{
    // The heartbeat of the coordinator itself: on the leader a confirmation round, everywhere a fresh view.
    private async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var started = Stopwatch.GetTimestamp();
                var cluster = _cluster!;
                if (IsLocalLeader(cluster))
                {
                    // Published before the round too: a new leader's view (active once its term's first entry is
                    // committed) reaches the host while the round runs, so its linearizable load overlaps the round.
                    Publish();
                    await ConfirmAsync(cluster, cancellationToken).ConfigureAwait(false);
                }

                Publish();
                await KeepSuccessionAsync(cluster, cancellationToken).ConfigureAwait(false);

                // The next round at the usual rate, or at once when this member has just won an election: a new
                // active monitor can renew the primary's lease only after its first confirmed round, and the
                // primary's lease is running out meanwhile (the old active monitor died), so waiting for the timer
                // would cost up to a whole interval of the clients' write stall.
                // Likewise while this member leads but has not confirmed its term yet: the first round of a term often
                // commits nothing (DotNext's first guess of a follower's log misses and it retries from an earlier
                // entry), and a whole interval more before the retry was part of the write stall of a slow
                // kill-monitor round. A short pause, not none, so a leader that cannot confirm does not spin.
                var interval = IsLocalLeader(cluster) && !HasConfirmedTerm(cluster)
                    ? _options.ConfirmationInterval / 10
                    : _options.ConfirmationInterval;
                var wait = interval - Stopwatch.GetElapsedTime(started);
                if (wait > TimeSpan.Zero)
                {
                    await _elected.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception e)
        {
            _logger.RaftLoopFailed(e);
            lock (_gate)
            {
                _confirmedTerm = -1;
                _confirmedUntil = 0;
            }
        }
    }

    private async Task ConfirmAsync(RaftCluster cluster, CancellationToken cancellationToken)
    {
        var term = cluster.AuditTrail.Term;
        var start = Stopwatch.GetTimestamp();
        using var round = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // A round that takes longer than the lease could not extend it anyway.
        round.CancelAfter(_options.LeaseDuration);
        try
        {
            await cluster.ForceReplicationAsync(round.Token).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
            return;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return;
        }

        if (!IsActive(cluster) || cluster.AuditTrail.Term != term || !cluster.TryGetLeaseToken(out var lease) || lease.IsCancellationRequested)
        {
            return;
        }

        lock (_gate)
        {
            if (_confirmedTerm != term)
            {
                _confirmedTerm = term;
                _confirmedUntil = 0;
            }

            _confirmedUntil = Math.Max(_confirmedUntil, start + _leaseTicks);
        }
    }

    /// <summary>
    /// A follower learns that an entry is committed only from the leader's next round after the commit (Raft sends the
    /// commit index with the following append), and that round would come only at the next confirmation or DotNext
    /// heartbeat, up to <see cref="RaftCoordinatorOptions.ConfirmationInterval"/> later. A follower monitor tells its
    /// subscribed clients of a new primary when it applies the entry, so with three monitors a client subscribed to a
    /// follower waited that long for a promotion the active monitor had already pushed to the servers (round 19: the
    /// followers applied a promotion a median 21–25 ms after the leader). So the round runs at once after every commit. It is an ordinary
    /// confirmation round (a round that started after the commit and reached a quorum), which changes no rule:
    /// the followers' acknowledgements, and the lease it confirms, are exactly as for a round of the loop.
    /// </summary>
    private void SpreadCommit(RaftCluster cluster) => _ = SpreadCommitAsync(cluster);

    private async Task SpreadCommitAsync(RaftCluster cluster)
    {
        try
        {
            await ConfirmAsync(cluster, _stopping.Token).ConfigureAwait(false);
            Publish();
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // Disposed, or no longer leading: the followers learn the commit from whoever leads next.
        }
        catch (Exception e)
        {
            // The loop's next round carries the commit anyway; this one only came early.
            _logger.RaftHandlerFailed(e, nameof(SpreadCommit));
        }
    }

    private void Publish()
    {
        var cluster = _cluster;
        if (cluster is null || Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        // The view is read under the lock too: DotNext's LeaderChanged and the loop both publish, and a view read
        // earlier must not overwrite a later one (the term would go back).
        lock (_gate)
        {
            var term = cluster.AuditTrail.Term;
            var active = IsActive(cluster);
            var activeAddress = ActiveAddress(cluster);
            var reached = 1 + cluster.Members.Count(m => m.IsRemote && m.Status == ClusterMemberStatus.Available);
            var total = cluster.Members.Count;

            // A quorum is behind this member while it leads or follows a leader with one (DotNext's consensus
            // token). DotNext's member statuses alone are not evidence: a follower whose peers all died never sends
            // them anything, so they stay "available" for ever, and a member alone said it had a quorum. So between
            // leaders (an election) a member counts as having a quorum only for one upper election timeout after it
            // last had the token, and only while its last requests reached a majority: /health does not flicker at
            // every election, and a member left alone says so within a second.
            // A follower keeps DotNext's token while it believes in its leader, even one long dead and without an
            // election (seen: 30 s, term unchanged), so it also needs a round from that leader within two upper
            // election timeouts.
            var now = Stopwatch.GetTimestamp();
            var heard = Volatile.Read(ref _inSyncAt);
            var hearsLeader = heard != 0 && Stopwatch.GetElapsedTime(heard, now) < 2 * _options.UpperElectionTimeout;
            var consensus = HasConsensus(cluster) && (active || IsLocalLeader(cluster) || hearsLeader);
            if (consensus)
            {
                _lastConsensusAt = now;
            }

            var hasQuorum = consensus
                || (reached > total / 2 && _lastConsensusAt != 0 && Stopwatch.GetElapsedTime(_lastConsensusAt, now) < _options.UpperElectionTimeout);
            var confirmed = active && _confirmedTerm == term ? _confirmedUntil : 0;
            var next = new Leadership(term, active, activeAddress, confirmed, hasQuorum);
            var previous = _leadership;
            if (next == previous)
            {
                return;
            }

            _leadership = next;
            now = Stopwatch.GetTimestamp();

            // The first confirmation of a term is a change, not a refresh: it is when this monitor may start granting.
            var changed = (previous with { ConfirmedUntil = 0 }) != (next with { ConfirmedUntil = 0 }) ||
                (previous.ConfirmedUntil == 0) != (next.ConfirmedUntil == 0);
            if (!changed && now - _lastRaised < RefreshEventTicks)
            {
                // A refresh of ConfirmedUntil alone: the newest value is in Leadership for whoever polls.
                return;
            }

            if (changed && (previous.Term, previous.IsActive, previous.Active) != (next.Term, next.IsActive, next.Active))
            {
                _logger.RaftLeadershipChanged(next.Term, next.Active, next.IsActive);
            }

            if (!hasQuorum && !_quorumLost)
            {
                _quorumLost = true;
                _logger.RaftNoQuorum(reached, total);
            }
            else if (hasQuorum && _quorumLost)
            {
                _quorumLost = false;
                _logger.RaftQuorumRegained(reached, total);
            }

            _lastRaised = now;

            // Raised under the lock so handlers see changes in order; Leadership's getter takes the same lock,
            // which a handler on this thread may re-enter.
            try
            {
                LeadershipChanged?.Invoke(next);
            }
            catch (Exception e)
            {
                _logger.RaftHandlerFailed(e, nameof(LeadershipChanged));
            }
        }
    }

    private void OnLeaderChanged(RaftCluster<RaftClusterMember> cluster, RaftClusterMember? leader)
    {
        if (leader is { IsRemote: false } && _elected.CurrentCount == 0)
        {
            try
            {
                _elected.Release();
            }
            catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
            {
                // Released by a concurrent change already (one wake-up is enough), or the coordinator is gone.
            }
        }

        Publish();
    }

    // DotNext raises this on a follower when a round from the leader found it level (no entries to append).
    private void OnInSync(RaftCluster<RaftClusterMember> cluster, RaftClusterMember leader) =>
        Volatile.Write(ref _inSyncAt, Stopwatch.GetTimestamp());

    private static bool IsLocalLeader(RaftCluster cluster) => cluster.Leader is { IsRemote: false };

    private bool HasConfirmedTerm(RaftCluster cluster)
    {
        var term = cluster.AuditTrail.Term;
        lock (_gate)
        {
            return _confirmedTerm == term;
        }
    }

    private bool HoldsConfirmedLease(RaftCluster cluster)
    {
        var term = cluster.AuditTrail.Term;
        lock (_gate)
        {
            return _confirmedTerm == term && Stopwatch.GetTimestamp() < _confirmedUntil;
        }
    }

    // Active: the local leader whose term's first entry is committed, so its state machine can answer for the term.
    private static bool IsActive(RaftCluster cluster)
    {
        try
        {
            return IsLocalLeader(cluster) && !cluster.LeadershipToken.IsCancellationRequested;
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return false;
        }
    }

    // DotNext's consensus token: live while this member is leader or follows a leader with a quorum behind it.
    private static bool HasConsensus(RaftCluster cluster)
    {
        try
        {
            return !cluster.ConsensusToken.IsCancellationRequested;
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return false;
        }
    }

    private NodeAddress ActiveAddress(RaftCluster cluster) =>
        cluster.Leader is { } leader ? HeartbeatOf(leader.EndPoint) : NodeAddress.None;

    private NodeAddress HeartbeatOf(EndPoint endPoint) =>
        _byRaft.TryGetValue(endPoint, out var member) ? member.Heartbeat : NodeAddress.None;

    private MonitorPeerState PeerState(RaftClusterMember member, bool localLeader)
    {
        if (!member.IsRemote)
        {
            // This member knows its own progress: a follower with a leader that has not been level with it (a round
            // that brought no new entries) for two election timeouts is still catching up.
            var inSyncAt = Volatile.Read(ref _inSyncAt);
            return localLeader || !HasConsensus(_cluster!) || Stopwatch.GetElapsedTime(inSyncAt) < _options.UpperElectionTimeout * 2
                ? MonitorPeerState.Up
                : MonitorPeerState.Lagging;
        }

        // DotNext 6.12 keeps each follower's replication index internal, so the leader reports reachability only.
        // A follower talks only to the leader, so it knows other followers only as DotNext last saw them; one it
        // never reached counts as unreachable rather than claiming health nobody observed.
        return member.Status == ClusterMemberStatus.Available ? MonitorPeerState.Up : MonitorPeerState.Unreachable;
    }
}

using System.Diagnostics;
using System.Net;
using DotNext.Net.Cluster.Consensus.Raft;

namespace Understudy.Coordination.Raft;

// A newer snapshot for a follower that keeps refusing the one it was sent (see the class remarks, "A refused snapshot").
public sealed partial class RaftCoordinator
{
    // Called on DotNext's replicator for that member: starts the newer snapshot in the background (remarks).
    // Internal so a test can stand in for the watch, as the wedge's timing cannot be produced on demand.
    internal void OnSnapshotRefused(EndPoint member, long index)
    {
        if (Volatile.Read(ref _disposed) != 0 || _cluster is not { } cluster || _stateMachine is not { } stateMachine ||
            !IsLocalLeader(cluster) || Interlocked.CompareExchange(ref _advancingSnapshot, 1, 0) != 0)
        {
            return;
        }

        _logger.RaftSnapshotRefused(member, index);
        Volatile.Write(ref _snapshotAdvance, AdvanceSnapshotAsync(cluster, stateMachine, _stopping.Token));
    }

    private async Task AdvanceSnapshotAsync(RaftCluster cluster, ConfigStateMachine stateMachine, CancellationToken cancellationToken)
    {
        try
        {
            // Off DotNext's replicator thread, which called OnSnapshotRefused from inside its log line.
            await Task.Yield();
            var since = Volatile.Read(ref _snapshotAdvancedAt);
            var wait = since == 0 ? TimeSpan.Zero : SnapshotAdvanceSpacing - Stopwatch.GetElapsedTime(since);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            }

            Volatile.Write(ref _snapshotAdvancedAt, Stopwatch.GetTimestamp());

            // The first no-op entry is written as a snapshot when applied; DotNext commits that snapshot (and ships
            // it) only once a later entry has been applied, hence the second. Neither changes the configuration. They
            // are not empty: DotNext's log never hands an entry without a payload to the state machine, so an empty
            // one would leave the requested snapshot untaken (a CI run wedged so, the leader re-sending the old one).
            stateMachine.RequestSnapshot();
            await cluster.ReplicateAsync(ConfigCommand.NoOp, null, cancellationToken).ConfigureAwait(false);
            await cluster.ReplicateAsync(ConfigCommand.NoOp, null, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception e)
        {
            // Leadership lost meanwhile (the next leader starts the follower afresh), or no quorum.
            _logger.RaftSnapshotAdvanceFailed(e);
        }
        finally
        {
            Volatile.Write(ref _advancingSnapshot, 0);
        }
    }
}

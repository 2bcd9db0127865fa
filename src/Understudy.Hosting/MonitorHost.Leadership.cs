using Understudy.Coordination;
using Understudy.Core.Monitor;
using Understudy.Protocol;

namespace Understudy.Hosting;

// How the monitor follows its coordinator's leadership: which monitor of the group is active, and the linearizable
// load of the configuration a newly active monitor makes before its node may act on it (all on the loop).
public sealed partial class MonitorHost
{
    // On the loop.
    private void RefreshLeadership()
    {
        var current = _coordinator!.Leadership;
        if (current.HasQuorum != _hadQuorum)
        {
            if (current.HasQuorum)
            {
                LogMessages.QuorumReached(_logger, current.Term, current.Active.IsNone ? "unknown" : current.Active.ToString());
            }
            else
            {
                LogMessages.QuorumLost(_logger, string.Join(", ", _coordinator.Peers.Where(p => p.State == MonitorPeerState.Unreachable).Select(p => p.Address)));
            }

            _hadQuorum = current.HasQuorum;
        }

        // A member that has just won leadership may not have replayed the committed configuration into its copy yet; acting
        // on a stale copy could renew the lease of a primary that was already replaced. So the node is told it is active
        // only once a linearizable load in this term has been handed to it (OnConfigObserved); until then it stays a
        // follower, which renews nobody. A group of one's file is never stale.
        if (current.IsActive && _configLoadedInTerm != current.Term)
        {
            StartTermLoad(current.Term);
            current = current with { IsActive = false, ConfirmedUntil = 0 };
        }

        if (current == _applied)
        {
            return;
        }

        if (current.IsActive != _applied.IsActive || current.Term != _applied.Term || current.Active != _applied.Active)
        {
            LogMessages.LeadershipChanged(_logger, current.Term, current.IsActive ? "active" : "follower", current.Active.IsNone ? "unknown" : current.Active.ToString());
        }

        _applied = current;
        ApplyLeadership(current);
    }

    // On the loop.
    private void StartTermLoad(long term)
    {
        if (_termLoadInFlight)
        {
            return;
        }

        _termLoadInFlight = true;
        _ = LoadForTermAsync(term);
    }

    private async Task LoadForTermAsync(long term)
    {
        ClusterConfig? loaded = null;
        try
        {
            loaded = await _coordinator!.LoadAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            // Leadership moved or the quorum went away mid-read: the next refresh tries again if still active.
            LogMessages.TermLoadFailed(_logger, term, e.Message);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        _loop.Post(() =>
        {
            _termLoadInFlight = false;
            if (loaded is null)
            {
                return;
            }

            OnConfigObserved(loaded);
            var now = _coordinator!.Leadership;
            if (now.IsActive && now.Term == term)
            {
                _configLoadedInTerm = term;
            }

            RefreshLeadership();
        });
    }

    // On the loop.
    private void ApplyLeadership(in Leadership leadership) => _node.OnLeadership(ToCore(leadership));

    // On the loop.
    private void OnConfigObserved(ClusterConfig config) => _node.OnConfigObserved(config);

    /// <summary>The coordinator's view as the core takes it (both on the monotonic clock of <see cref="TimeProvider.System"/>).</summary>
    public static MonitorLeadership ToCore(in Leadership leadership) =>
        new(leadership.Term, leadership.IsActive, leadership.Active, leadership.ConfirmedUntil);
}

using Understudy.Protocol;

namespace Understudy.Core.Monitor;

// The monitor group: becoming active or a follower, confirmation of leadership, configurations seen through the coordinator.
public sealed partial class MonitorNode
{
    // ------------------------------------------------------------------ the monitor group

    /// <summary>
    /// The coordinator's view changed: who is active, the term, or (often) only the confirmation deadline. Cheap when
    /// only <see cref="MonitorLeadership.ConfirmedUntil"/> moved. A view with a lower term than the current one is stale and ignored.
    /// </summary>
    public void OnLeadership(in MonitorLeadership leadership)
    {
        if (leadership.Term < _leadership.Term)
        {
            return;
        }

        var now = Now;
        var was = _leadership;
        _leadership = leadership;
        if (leadership.IsActive && (!was.IsActive || leadership.Term != was.Term))
        {
            if (was.IsActive)
            {
                // Elected again in a new term: what the old term started is called off, as on losing leadership.
                CallOffWork($"this monitor's term {was.Term} ended");
            }

            BecomeActive(now);
        }
        else if (!leadership.IsActive && was.IsActive)
        {
            BecomeFollower();
        }
        else if (leadership.IsActive && now < leadership.ConfirmedUntil)
        {
            _unconfirmedReported = false;
        }

        if (!leadership.IsActive && !leadership.Active.IsNone && leadership.Active != was.Active)
        {
            // A follower that learns of a new active monitor names it to its subscribers at once, so they move there
            // (PrimaryUpdate.ActiveMonitor) rather than hear the next promotion a Raft round late from this follower.
            TellSubscribers();
        }

        if (leadership.IsActive && now < leadership.ConfirmedUntil && _renewedOnConfirmationTerm != leadership.Term)
        {
            _renewedOnConfirmationTerm = leadership.Term;
            RenewPrimaryOnConfirmation(now);
        }

        AssertInvariants();
    }

    /// <summary>
    /// The first confirmation of a term: answer the configured primary's latest heartbeat again, now with a lease,
    /// rather than wait up to a heartbeat interval for its next one. After the active monitor died the primary's lease
    /// is running out, and this wait was part of the clients' write stall. The heartbeat must be from within one
    /// interval (older, it may no longer describe the server, and the primary may have hung). The lease is dated from
    /// that heartbeat's send time, earlier than a fresh one's, so the server's lease ends no later than it would; the
    /// grant itself follows the same rules as any other (rule 1, and only to the lease's holder).
    /// </summary>
    private void RenewPrimaryOnConfirmation(long now)
    {
        if (_primaryBeat is not { } last || last.Beat.From != _config.Primary || now - last.ReceivedAt > Ticks(Options.HeartbeatInterval))
        {
            return;
        }

        var beat = last.Beat;
        if (TryGrantLease(beat, now))
        {
            _env.SendToServer(beat.From, new HeartbeatAck(_config, beat.SentAt, _lease.DurationMs, Incarnation, _leadership.Term, IsActive));
        }
    }

    /// <summary>
    /// A committed configuration seen through the coordinator (how a follower keeps its copy; the active monitor may
    /// see its own writes here before the store's answer). Adopted when its version is newer; subscribed clients are
    /// told of a new primary.
    /// </summary>
    public void OnConfigObserved(ClusterConfig committed)
    {
        if (committed.Version <= _config.Version)
        {
            return;
        }

        var previous = _config;
        _config = committed;
        var ownWrite = _proposals.InFlight is { } inFlight && inFlight.Next.Version == committed.Version;
        if (!ownWrite)
        {
            // Not a change this monitor is storing: whatever it was doing about the old configuration is moot.
            if (_proposals.InFlight is null && _state.Phase == FailoverPhase.Forming && committed.Epoch > 0)
            {
                _state = new FailoverState(FailoverPhase.Stable);
            }

            if (committed.Epoch != previous.Epoch || committed.Primary != previous.Primary)
            {
                TellSubscribers();
            }
        }

        AssertInvariants();
    }

    /// <summary>
    /// What a subscriber is told: the configured primary, and from a follower the active monitor it knows of, so the
    /// client can subscribe there instead (a follower hears of a commit only with the leader's next Raft round).
    /// </summary>
    private PrimaryUpdate PrimaryUpdateNow() => new(_config.Epoch, _config.Version, _config.Primary)
    {
        ActiveMonitor = IsActive ? NodeAddress.None : _leadership.Active,
    };

    private void TellSubscribers()
    {
        var update = PrimaryUpdateNow();
        foreach (var client in _subscribers)
        {
            _env.SendToClient(client, update);
        }
    }

    /// <summary>Whether a lease may be granted now (rule 1), recording once per lapse that leadership is unconfirmed.</summary>
    private bool MayGrantNow(long now)
    {
        if (_leaseRule.MayGrant(new LeaseGrantView(now, _leadership, _lease.DurationTicks)))
        {
            _unconfirmedReported = false;
            return true;
        }

        if (IsActive && !_unconfirmedReported)
        {
            _unconfirmedReported = true;
            Record(MonitorEventKind.LeadershipUnconfirmed, _config.Primary, $"term {_leadership.Term}: leadership not confirmed by a quorum; no lease granted until it is");
        }

        return false;
    }

    private string NotActiveMessage() => _leadership.Active.IsNone
        ? "this monitor is not the active one, and no active monitor is known"
        : $"this monitor is not the active one; the active monitor is {_leadership.Active}";

    private void BecomeActive(long now)
    {
        // Rule 2: leases earlier active monitors granted may run until this instant; nobody but the configured
        // primary is promoted before it unless that primary is known dead.
        var othersAt = _leaseRule.OthersMayBePromotedAt(new LeaseWaitView(now, _leadership.Term, _lease.DurationTicks, Ticks(Options.MaxClockDrift)));
        _lease.AwaitEarlierMonitors(othersAt);
        _lease.AssumeHolder(_config.Primary);

        // Rule 4: judge nobody on what was seen as a follower until a failure timeout has passed; a healthy
        // primary heartbeats in that time and is adopted as it is (no new epoch).
        _members.BeginGrace(now + Ticks(Options.FailureTimeout));
        _state = new FailoverState(_config.Epoch == 0 ? FailoverPhase.Forming : FailoverPhase.Stable);
        _noCandidateReported = false;
        _unconfirmedReported = false;
        Record(MonitorEventKind.BecameActive, _config.Primary, $"term {_leadership.Term}; keeping {_config.Primary} (epoch {_config.Epoch}); another server may be promoted in {Math.Max(0, Ms(othersAt - now)):0} ms at the earliest");
    }

    private void BecomeFollower()
    {
        var refusal = NotActiveMessage();
        CallOffWork(refusal);
        _grantsWhenFollowerStarted = _lease.GrantCount;
        Record(MonitorEventKind.BecameFollower, NodeAddress.None, $"term {_leadership.Term}: {refusal}");
    }

    /// <summary>
    /// Forgets the proposal in flight (its late answer is adopted like any configuration) and calls off a switchover
    /// or forced promotion, telling whoever asked; the failover state starts afresh.
    /// </summary>
    private void CallOffWork(string refusal)
    {
        if (_proposals.Settle() is { InSyncRequest: { } request })
        {
            _env.SendToServer(request.From, new InSyncChangeResult(request.RequestId, false, _config, refusal));
        }

        if (_state.Switchover is { } switchover)
        {
            if (!switchover.ReadyReceived)
            {
                // Release the primary this monitor asked to hand over: the new active monitor knows nothing of it.
                _env.SendToServer(_config.Primary, new StepDown(_config.Epoch, NodeAddress.None));
            }

            _env.SendToClient(switchover.Client, new AdminResponse(switchover.RequestId, false, $"switchover called off: {refusal}", ReadOnlyMemory<byte>.Empty) { ActiveMonitor = _leadership.Active });
            Record(MonitorEventKind.SwitchoverFailed, switchover.Target, $"called off: {refusal}");
        }

        if (_state.Forced is { } forced)
        {
            _env.SendToClient(forced.Client, new AdminResponse(forced.RequestId, false, $"forced promotion called off: {refusal}", ReadOnlyMemory<byte>.Empty) { ActiveMonitor = _leadership.Active });
        }

        _state = new FailoverState(_config.Epoch == 0 ? FailoverPhase.Forming : FailoverPhase.Stable);
    }
}

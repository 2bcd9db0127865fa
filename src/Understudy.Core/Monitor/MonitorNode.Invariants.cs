namespace Understudy.Core.Monitor;

// The monitor's local invariants, stated in code.
public sealed partial class MonitorNode
{
    // ------------------------------------------------------------------ invariants

    /// <summary>
    /// Throws <see cref="InvariantViolationException"/> when one of the monitor's local invariants does not hold:
    /// the configuration is coherent, the phase agrees with the data it carries and the proposal in flight, and no
    /// primary is replaced while a lease it may hold still runs; a follower has nothing under way and grants nothing; a
    /// lease is granted only before the confirmed-leadership deadline; a newly active monitor promotes nobody else
    /// while a lease an earlier active monitor granted may still run (unless the primary is known dead). Debug builds check after every input; the
    /// simulator checks after every step.
    /// </summary>
    public void CheckInvariants()
    {
        var phase = _state.Phase;
        var inFlight = _proposals.InFlight;
        if (_config.Epoch > 0 && !_config.IsInSync(_config.Primary))
        {
            Violated($"the primary {_config.Primary} of epoch {_config.Epoch} is not in the in-sync set");
        }

        if (_config.InSync.Any(a => !_config.IsMember(a)))
        {
            Violated("an in-sync server is not a member");
        }

        if ((phase == FailoverPhase.Forming && _config.Epoch != 0) || (_config.Epoch == 0 && phase is not (FailoverPhase.Forming or FailoverPhase.Promoting)))
        {
            Violated($"phase {phase} at epoch {_config.Epoch}: only a cluster that has not formed (epoch 0) forms, or promotes its first primary");
        }

        if (inFlight is { NamesNewPrimary: true } && phase != FailoverPhase.Promoting)
        {
            Violated($"a {inFlight.Purpose} is in flight in phase {phase}");
        }

        // A switchover's promotion refused by the store stays Promoting until the switchover's deadline.
        if (phase == FailoverPhase.Promoting && inFlight is not { NamesNewPrimary: true } && _state.Switchover is not { ReadyReceived: true })
        {
            Violated("promoting without a promotion in flight");
        }

        if ((phase == FailoverPhase.Switchover) != (_state.Switchover is { ReadyReceived: false }))
        {
            Violated($"phase {phase} with switchover {_state.Switchover}");
        }

        if (_state.Switchover is { ReadyReceived: true } && phase != FailoverPhase.Promoting)
        {
            Violated($"the primary is ready to hand over but the phase is {phase}");
        }

        if (_state.Forced is not null && (phase is not (FailoverPhase.AwaitingLeaseExpiry or FailoverPhase.Promoting) || _state.Switchover is not null))
        {
            Violated($"a forced promotion waits in phase {phase}");
        }

        if (_state.Failure is not null && phase is not (FailoverPhase.AwaitingLeaseExpiry or FailoverPhase.NoCandidate or FailoverPhase.Promoting))
        {
            Violated($"the primary failed ({_state.Failure.Cause}) but the phase is {phase}");
        }

        if (inFlight is { NamesNewPrimary: true } && _lease.LastGrantedAt > inFlight.StartedAt)
        {
            Violated("a lease was granted while a new primary is being stored");
        }

        // The rule that keeps two primaries from serving: replace one only when it surely serves nothing.
        if (inFlight is { Purpose: ProposalPurpose.Promotion } && _state.Switchover is null && _state.Failure?.Cause.ProvesDeath() != true && inFlight.StartedAt < _lease.SurelyExpiresAt)
        {
            Violated($"{inFlight.Subject} is being promoted while the lease of {inFlight.OldPrimary} may still run");
        }

        // The monitor group (docs/ARCHITECTURE.md, "The monitor group and lease safety").
        if (!IsActive && (inFlight is not null || _state.Switchover is not null || _state.Forced is not null || _state.Failure is not null))
        {
            Violated($"a follower (term {_leadership.Term}) has a proposal ({inFlight?.Purpose}), a switchover, a forced promotion or a failover under way");
        }

        if (!IsActive && _lease.GrantCount != _grantsWhenFollowerStarted)
        {
            Violated($"a follower (term {_leadership.Term}) granted {_lease.GrantCount - _grantsWhenFollowerStarted} lease(s)");
        }

        // Rule 1: a lease is granted only before the leadership deadline in force, so it ends before that deadline plus one lease.
        if (_lease.LastGrantedAt != long.MinValue && _lease.LastGrantedAt >= _lease.LastGrantConfirmedUntil)
        {
            Violated($"a lease was granted at {_lease.LastGrantedAt}, not before the confirmed leadership deadline {_lease.LastGrantConfirmedUntil}");
        }

        // Rule 2: a newly active monitor promotes nobody but the configured primary before earlier monitors' leases surely expired.
        if (inFlight is { Purpose: ProposalPurpose.Promotion } && _state.Failure?.Cause.ProvesDeath() != true && inFlight.StartedAt < _lease.InheritedUntil)
        {
            Violated($"{inFlight.Subject} is being promoted while a lease granted by an earlier active monitor may still run");
        }

        if (_journal.Events.Count > Options.MaxEvents)
        {
            Violated($"{_journal.Events.Count} events kept, more than {Options.MaxEvents}");
        }

        _members.CheckInvariants();
    }
}

using Understudy.Protocol;

namespace Understudy.Core.Monitor;

// The failover state machine: what the monitor does about the primary, decided by its phase.
public sealed partial class MonitorNode
{
    // ------------------------------------------------------------------ the failover state machine

    private void Evaluate(long now)
    {
        // One configuration change at a time: the store's answer evaluates again.
        if (_proposals.InFlight is not null)
        {
            return;
        }

        if (_config.Epoch == 0)
        {
            Bootstrap(now);
            return;
        }

        var cause = JudgePrimary(now);
        switch (_state)
        {
            case { Forced: { } forced }:
                // AwaitingLeaseExpiry or Promoting (a refused promotion is proposed again). No lease is granted
                // while a forced promotion waits, so even a healthy primary's lease runs out.
                if (cause?.ProvesDeath() != true && _lease.MayStillRun(now))
                {
                    SetPhase(FailoverPhase.AwaitingLeaseExpiry, _config.Primary, $"forced promotion of {forced.Target} waits for the lease of {_config.Primary} to expire");
                    return;
                }

                ProposePromotion(forced.Target, "forced by an operator", forced: true, now);
                return;

            case { Phase: FailoverPhase.Switchover or FailoverPhase.Promoting, Switchover: { } switchover }:
                // Waiting for the primary to be ready, or (Promoting) for the store to take the promotion again.
                if (cause is not null)
                {
                    FinishSwitchover(false, "the primary failed during the switchover; failing over instead");
                    FailOver(cause.Value, now);
                }
                else if (now > switchover.Deadline)
                {
                    _env.SendToServer(_config.Primary, new StepDown(_config.Epoch, NodeAddress.None));
                    FinishSwitchover(false, $"{switchover.Target} did not catch up within {Options.SwitchoverTimeout.TotalSeconds:0.#} s");
                }
                else if (switchover is { ReadyReceived: true, PromotionProposed: false })
                {
                    // The primary became ready while another change was being stored; that change has settled.
                    ProposeSwitchoverPromotion(now);
                }

                return;

            default:
                // Stable, AwaitingLeaseExpiry, NoCandidate, Forming (a configuration came from another writer),
                // or Promoting whose proposal the store refused.
                if (cause is not null)
                {
                    FailOver(cause.Value, now);
                    return;
                }

                SetPhase(FailoverPhase.Stable, _config.Primary, string.Empty);
                Housekeeping(now);
                return;
        }
    }

    /// <summary>
    /// Why the primary of the current epoch has failed (null if it has not), keeping the failure the phase
    /// carries: a new one is recorded once per epoch, and a failure only suspected becomes certain when proof comes.
    /// </summary>
    private FailureCause? JudgePrimary(long now)
    {
        var cause = _members.JudgePrimary(_config);
        if (cause is not { } c)
        {
            if (_state.Failure is not null)
            {
                _state = _state with { Failure = null };
            }

            return null;
        }

        if (_state.Failure is not { } failure || failure.Epoch != _config.Epoch)
        {
            _state = _state with { Failure = new PrimaryFailure(_config.Epoch, now, c) };
            Record(MonitorEventKind.PrimaryFailed, _config.Primary, c.Describe());
        }
        else if (c.ProvesDeath() && failure.Cause is not (FailureCause.PrimaryCrashed or FailureCause.PrimaryRestarted))
        {
            _state = _state with { Failure = failure with { Cause = c } };
        }

        return c;
    }

    /// <summary>The primary failed: wait for its lease unless it is surely dead, then promote the best candidate.</summary>
    private void FailOver(FailureCause cause, long now)
    {
        if (!cause.ProvesDeath() && _lease.MayStillRun(now))
        {
            SetPhase(FailoverPhase.AwaitingLeaseExpiry, _config.Primary, $"waiting {Ms(_lease.SurelyExpiresAt - now):0} ms for its lease to expire");
            return;
        }

        var candidate = _promotionRule.ChooseCandidate(_members.PromotionView(_config));
        if (candidate.IsNone)
        {
            SetPhase(FailoverPhase.NoCandidate, _config.Primary, $"no alive in-sync server can take over; in-sync set [{string.Join(", ", _config.InSync)}]");
            return;
        }

        ProposePromotion(candidate, _state.Failure?.Cause.Describe() ?? "primary failed", forced: false, now);
    }

    private void Bootstrap(long now)
    {
        var alive = _members.All.Where(m => m.Liveness == Liveness.Alive && m.LastHeartbeat is not null).ToList();
        if (alive.Count == 0 || now - _members.FirstHeartbeatAt < Ticks(Options.BootstrapDelay))
        {
            SetPhase(FailoverPhase.Forming, NodeAddress.None, "waiting for servers");
            return;
        }

        // The longest log first (servers may hold data from before the monitor lost its configuration), then priority.
        var best = alive
            .OrderByDescending(m => m.LastHeartbeat!.Value.LastEpoch)
            .ThenByDescending(m => m.LastHeartbeat!.Value.LastIndex)
            .ThenByDescending(m => m.LastHeartbeat!.Value.Priority)
            .ThenByDescending(m => m.Address)
            .First();
        var epoch = alive.Max(m => Math.Max(m.LastHeartbeat!.Value.Epoch, m.LastHeartbeat!.Value.LastEpoch)) + 1;
        var members = alive.Select(m => new MemberInfo(m.Address, m.LastHeartbeat!.Value.Priority))
            .Concat(_config.Members.Where(x => alive.All(a => a.Address != x.Address)))
            .OrderBy(x => x.Address);
        var next = _config with
        {
            Epoch = epoch,
            Version = _config.Version + 1,
            Primary = best.Address,
            InSync = [best.Address],
            Members = [.. members],
        };
        SetPhase(FailoverPhase.Promoting, best.Address, "forming the cluster");
        _proposals.Propose(new ConfigProposal(ProposalPurpose.Bootstrap, _config.Version, next, best.Address, now));
    }

    private void ProposePromotion(NodeAddress candidate, string reason, bool forced, long now)
    {
        var oldPrimary = _config.Primary;

        // Keep in the in-sync set only members alive now (the new primary would ask the rest out anyway). The old
        // primary stays only if it handed over or is known to be back as a backup: otherwise it may be the one that failed.
        var oldPrimaryStays = _state.Switchover is not null || _members.PrimaryGoneIn(_config.Epoch);
        var inSync = forced
            ? [candidate]
            : _config.InSync.Where(a => a == candidate || (_members.TryGet(a, out var m) && m.Liveness == Liveness.Alive && !m.LostUnsyncedWrites && (a != oldPrimary || oldPrimaryStays))).ToList();
        var next = _config with
        {
            Epoch = _config.Epoch + 1,
            Version = _config.Version + 1,
            Primary = candidate,
            InSync = [.. inSync.Distinct().Order()],
        };
        SetPhase(FailoverPhase.Promoting, candidate, reason);
        _proposals.Propose(new ConfigProposal(ProposalPurpose.Promotion, _config.Version, next, candidate, now) { Reason = reason, OldPrimary = oldPrimary, DetectedAt = _state.Failure?.DetectedAt });
    }

    /// <summary>The store answered <paramref name="proposal"/>; <see cref="_config"/> already holds what it stores now.</summary>
    private void Settled(ConfigProposal proposal, bool committed, ClusterConfig current)
    {
        if (!committed)
        {
            Record(MonitorEventKind.ConfigStoreRejected, NodeAddress.None, $"version {proposal.ExpectedVersion} was replaced by another writer; now {current}");
            if (proposal.InSyncRequest is { } rejected)
            {
                _env.SendToServer(rejected.From, new InSyncChangeResult(rejected.RequestId, false, _config, "configuration changed by another writer"));
            }

            Evaluate(Now);
            return;
        }

        switch (proposal.Purpose)
        {
            case ProposalPurpose.Bootstrap:
                Record(MonitorEventKind.ClusterFormed, _config.Primary, $"epoch {_config.Epoch}: {_config.Primary} is primary");
                AfterNewPrimary(proposal);
                break;
            case ProposalPurpose.Promotion:
                AfterNewPrimary(proposal);
                break;
            case ProposalPurpose.InSyncChange when proposal.InSyncRequest is { } request:
                if (request.Op == InSyncOp.Add && _members.TryGet(request.Member, out var added))
                {
                    added.LostUnsyncedWrites = false;
                }

                Record(request.Op == InSyncOp.Add ? MonitorEventKind.InSyncExpanded : MonitorEventKind.InSyncShrunk, request.Member, $"in-sync set now [{string.Join(", ", _config.InSync)}] (asked by the primary)");
                _env.SendToServer(request.From, new InSyncChangeResult(request.RequestId, true, _config, string.Empty));
                PushConfigToServers();
                break;
            case ProposalPurpose.ResyncRemoval:
                Record(MonitorEventKind.InSyncShrunk, proposal.Subject, "restarted without fsync=always: out of the in-sync set until caught up");
                PushConfigToServers();
                break;
            case ProposalPurpose.Membership:
                Record(MonitorEventKind.MemberJoined, proposal.Subject, $"priority {_config.PriorityOf(proposal.Subject)}");
                PushConfigToServers();
                break;
        }

        Evaluate(Now);
    }

    private void AfterNewPrimary(ConfigProposal proposal)
    {
        var now = Now;
        _lease.StartTerm(_config.Primary, now);
        _state = _state with { Failure = null };
        _noCandidateReported = false;
        PushConfigToServers();
        TellSubscribers();

        if (proposal.Purpose == ProposalPurpose.Promotion)
        {
            var elapsed = proposal.DetectedAt is { } detected ? Ms(now - detected) : (double?)null;
            Record(MonitorEventKind.Promoted, _config.Primary, $"epoch {_config.Epoch}: {proposal.OldPrimary} -> {_config.Primary} ({proposal.Reason}); in-sync set [{string.Join(", ", _config.InSync)}]", elapsed);
        }

        Record(MonitorEventKind.ClientsNotified, _config.Primary, $"{_subscribers.Count} subscribed client(s) told of epoch {_config.Epoch}", Ms(now - proposal.StartedAt));

        if (_state.Switchover is { } switchover)
        {
            var ms = Ms(now - switchover.StartedAt);
            _env.SendToClient(switchover.Client, new AdminResponse(switchover.RequestId, true, $"switched over to {_config.Primary} (epoch {_config.Epoch}) in {ms:0} ms", ReadOnlyMemory<byte>.Empty));
            Record(MonitorEventKind.SwitchoverCompleted, _config.Primary, $"from {proposal.OldPrimary}", ms);
        }

        if (_state.Forced is { } forced)
        {
            _env.SendToClient(forced.Client, new AdminResponse(forced.RequestId, true, $"forced promotion done: {_config.Primary} leads epoch {_config.Epoch}; writes acknowledged by others and missing from its log are lost", ReadOnlyMemory<byte>.Empty));
        }

        _state = new FailoverState(_state.Phase);
        SetPhase(FailoverPhase.Stable, _config.Primary, string.Empty);
    }

    private void PushConfigToServers()
    {
        var now = Now;
        foreach (var member in _config.Members)
        {
            // The push to the primary carries a lease: granted only as a heartbeat's answer would be (rule 1).
            if (member.Address == _config.Primary && _members.TryGet(member.Address, out var p) && p.LastHeartbeat is { } hb && p.Liveness == Liveness.Alive && MayGrantNow(now))
            {
                _lease.Grant(member.Address, now, _leadership.ConfirmedUntil);
                _env.SendToServer(member.Address, new ConfigPush(_config, hb.SentAt, _lease.DurationMs));
            }
            else
            {
                _env.SendToServer(member.Address, new ConfigPush(_config, 0, 0));
            }
        }
    }

    /// <summary>In a stable cluster, teach the configuration what the members report: new members and priorities, lost writes.</summary>
    private void Housekeeping(long now)
    {
        foreach (var m in _members.All.OrderBy(m => m.Address))
        {
            if (m.Liveness != Liveness.Alive || m.LastHeartbeat is not { } hb)
            {
                continue;
            }

            if (!_config.IsMember(m.Address) || _config.PriorityOf(m.Address) != hb.Priority)
            {
                _proposals.Propose(new ConfigProposal(ProposalPurpose.Membership, _config.Version, _config.WithMember(new MemberInfo(m.Address, hb.Priority)), m.Address, now));
                return;
            }

            if (m.LostUnsyncedWrites && _config.IsInSync(m.Address) && m.Address != _config.Primary)
            {
                _proposals.Propose(new ConfigProposal(ProposalPurpose.ResyncRemoval, _config.Version, _config.WithInSync(_config.InSync.Where(a => a != m.Address)), m.Address, now));
                return;
            }
        }
    }
}

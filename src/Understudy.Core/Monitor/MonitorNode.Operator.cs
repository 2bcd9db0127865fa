using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

// An operator's switchover and forced promotion: checked, then carried out by the state machine.
public sealed partial class MonitorNode
{
    // ------------------------------------------------------------------ operator commands

    private void StartSwitchover(ClientRef client, in AdminRequest request, long now)
    {
        string? problem = null;
        var target = request.Target;
        if (_state is not { Phase: FailoverPhase.Stable, Forced: null } || _proposals.InFlight is not null)
        {
            problem = $"the cluster is not stable (phase {_state.Phase}); try again shortly";
        }
        else if (_lease.InheritedUntil > now)
        {
            // Rule 2 (ARCHITECTURE.md): a newly active monitor promotes nobody but the configured primary until the
            // leases earlier monitors granted have surely expired.
            problem = $"this monitor became active recently; leases earlier monitors granted may run {Ms(_lease.InheritedUntil - now):0} ms more; try again then";
        }
        else
        {
            if (target.IsNone)
            {
                target = _promotionRule.ChooseCandidate(_members.PromotionView(_config));
            }

            if (target.IsNone)
            {
                problem = "no alive in-sync backup to hand over to";
            }
            else if (target == _config.Primary)
            {
                problem = $"{target} is already the primary";
            }
            else if (!_config.IsInSync(target) || !_members.IsAlive(target))
            {
                problem = $"{target} is not an alive in-sync backup; in-sync set [{string.Join(", ", _config.InSync)}]";
            }
        }

        if (problem is not null)
        {
            _env.SendToClient(client, new AdminResponse(request.RequestId, false, problem, ReadOnlyMemory<byte>.Empty));
            return;
        }

        _state = _state with { Switchover = new Switchover(target, client, request.RequestId, now, now + Ticks(Options.SwitchoverTimeout)) };
        SetPhase(FailoverPhase.Switchover, target, $"handing over from {_config.Primary}");
        Record(MonitorEventKind.SwitchoverStarted, target, $"from {_config.Primary}");
        _env.SendToServer(_config.Primary, new StepDown(_config.Epoch, target));
    }

    /// <summary>
    /// The primary is ready to hand over and nothing else is being stored: promote the target, if it is still an
    /// alive in-sync server. If it is not (an in-sync change stored meanwhile took it out), release the primary.
    /// </summary>
    private void ProposeSwitchoverPromotion(long now)
    {
        if (_state.Switchover is not { ReadyReceived: true, PromotionProposed: false } switchover)
        {
            return;
        }

        if (!_config.IsInSync(switchover.Target) || !_members.TryGet(switchover.Target, out var target) || target.Liveness != Liveness.Alive)
        {
            _env.SendToServer(_config.Primary, new StepDown(_config.Epoch, NodeAddress.None));
            FinishSwitchover(false, $"{switchover.Target} is no longer an alive in-sync backup; in-sync set [{string.Join(", ", _config.InSync)}]");
            return;
        }

        _state = _state with { Switchover = switchover with { PromotionProposed = true } };
        ProposePromotion(switchover.Target, $"switchover from {_config.Primary}", forced: false, now);
    }

    private void FinishSwitchover(bool ok, string message)
    {
        if (_state.Switchover is not { } switchover)
        {
            return;
        }

        _state = _state with { Switchover = null };
        Record(ok ? MonitorEventKind.SwitchoverCompleted : MonitorEventKind.SwitchoverFailed, switchover.Target, message);
        _env.SendToClient(switchover.Client, new AdminResponse(switchover.RequestId, ok, message, ReadOnlyMemory<byte>.Empty));
        SetPhase(FailoverPhase.Stable, _config.Primary, string.Empty);
    }

    private void StartForcedPromotion(ClientRef client, in AdminRequest request, long now)
    {
        string? problem = null;
        if (!_members.TryGet(request.Target, out var target) || !_config.IsMember(request.Target))
        {
            problem = $"{request.Target} is not a member of this cluster";
        }
        else if (target.Liveness != Liveness.Alive)
        {
            problem = $"{request.Target} is not alive ({target.Liveness})";
        }
        else if (request.Target == _config.Primary && !_members.PrimaryGoneIn(_config.Epoch))
        {
            problem = $"{request.Target} is already the primary";
        }
        else if (_proposals.InFlight is not null || _state.Switchover is not null || _state.Forced is not null)
        {
            problem = "another configuration change is under way; try again shortly";
        }

        if (problem is not null)
        {
            _env.SendToClient(client, new AdminResponse(request.RequestId, false, problem, ReadOnlyMemory<byte>.Empty));
            return;
        }

        var hb = target.LastHeartbeat!.Value;
        var longest = _members.All.Where(m => m.LastHeartbeat is not null).Max(m => m.LastHeartbeat!.Value.LastIndex);
        var warning = _config.IsInSync(request.Target)
            ? $"{request.Target} is in sync: nothing acknowledged should be lost"
            : $"UNSAFE: {request.Target} is out of sync (log ends at {hb.LastIndex}, longest known log {longest}); acknowledged writes after its log end will be lost";
        _state = _state with { Forced = new ForcedPromotion(request.Target, client, request.RequestId) };
        Record(MonitorEventKind.ForcedPromotion, request.Target, warning);
        Evaluate(now);
    }
}

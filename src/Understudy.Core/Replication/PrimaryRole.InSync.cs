using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>The primary asks the monitor to change the in-sync set, and hands over to a target when asked.</summary>
internal sealed partial class PrimaryRole
{
    // ------------------------------------------------------------------ in-sync set

    private void DecideInSyncChange(long now)
    {
        if (_pendingChange is { } pending)
        {
            if (now - pending.SentAt >= _node.Ticks(Options.InSyncChangeRetry))
            {
                _pendingChange = pending with { SentAt = now };
                Env.SendToMonitor(new InSyncChange(pending.RequestId, Self, Epoch, pending.ExpectedVersion, pending.Op, pending.Member));
            }

            return;
        }

        if (Config.Epoch != Epoch || Config.Primary != Self)
        {
            return;
        }

        var lag = _node.Ticks(Options.ReplicaLagTimeout);
        foreach (var member in Config.InSync)
        {
            if (member == Self || !_followers.TryGetValue(member, out var f))
            {
                continue;
            }

            var behind = f.MatchIndex < Log.LastIndex;
            if (behind && (f.Disconnected || now - f.LastProgressAt > lag))
            {
                RequestInSyncChange(InSyncOp.Remove, member, now);
                return;
            }
        }

        foreach (var member in Config.Members)
        {
            var address = member.Address;
            if (address == Self || Config.IsInSync(address) || !_followers.TryGetValue(address, out var f))
            {
                continue;
            }

            if (_pendingAdds.TryGetValue(address, out var expected) && expected != Config.Version)
            {
                continue;
            }

            var alive = f.LastAckAt != long.MinValue && now - f.LastAckAt <= lag && !f.Disconnected;
            if (alive && f.MatchIndex >= _node.CommitIndex && Log.LastIndex - f.MatchIndex <= Options.CatchUpSlack)
            {
                // From this moment the backup counts for commits, so it holds everything committed when added.
                _pendingAdds[address] = Config.Version;
                RequestInSyncChange(InSyncOp.Add, address, now);
                return;
            }
        }
    }

    private void RequestInSyncChange(InSyncOp op, NodeAddress member, long now)
    {
        var id = _node.NextInSyncRequestId();
        _pendingChange = new PendingChange(id, op, member, Config.Version, now);
        Env.Report(new ServerEvent(ServerEventKind.InSyncChangeRequested, Epoch, member, 0, op.ToString()));
        Env.SendToMonitor(new InSyncChange(id, Self, Epoch, Config.Version, op, member));
    }

    // ------------------------------------------------------------------ handover

    private void CheckHandover(long now)
    {
        if (_handover is not { ReadySent: false } handover)
        {
            return;
        }

        var target = _followers.GetValueOrDefault(handover.Target);
        if (target is not null && _node.CommitIndex == Log.LastIndex && target.MatchIndex >= Log.LastIndex && Config.IsInSync(handover.Target))
        {
            // From here on this server never serves in this epoch again: the monitor may promote at once.
            _handover = handover with { ReadySent = true };
            _leaseExpiresAt = long.MinValue;
            _leaseHeld = false;
            Env.Report(new ServerEvent(ServerEventKind.HandoverReady, Epoch, handover.Target, Log.LastIndex, "target holds the whole log"));
            Env.SendToMonitor(new StepDownResult(Epoch, Self, handover.Target, true, Log.LastIndex, string.Empty));
        }
        else if (now > handover.Deadline)
        {
            _handover = null;
            Env.Report(new ServerEvent(ServerEventKind.HandoverAbandoned, Epoch, handover.Target, Log.LastIndex, "target did not catch up in time"));
            Env.SendToMonitor(new StepDownResult(Epoch, Self, handover.Target, false, Log.LastIndex, $"{handover.Target} did not catch up within {Options.SwitchoverTimeout.TotalSeconds:0.#} s"));
        }
    }
}

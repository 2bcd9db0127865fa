using System.Diagnostics;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// The monitor's protocol logic: judges servers from heartbeats and connection signals, grants the
/// primary its lease, promotes the best in-sync backup when the primary fails, keeps the configuration
/// through compare-and-set, and tells clients where the primary is. It does no I/O (see
/// <see cref="IMonitorEnvironment"/>) and is not thread-safe: the adapter feeds it from one loop.
/// </summary>
/// <remarks>
/// This class holds the inputs and the failover state machine (<see cref="FailoverPhase"/> with its data);
/// its parts are <see cref="MemberTracker"/> (liveness, probes), <see cref="LeaseKeeper"/> (the primary's
/// lease), <see cref="ConfigProposer"/> (the configuration change in flight) and <see cref="MonitorJournal"/>
/// (the event history). Every public input ends with <see cref="CheckInvariants"/> in debug builds.
/// </remarks>
public sealed class MonitorNode
{
    private readonly IMonitorEnvironment _env;
    private readonly TimeProvider _time;
    private readonly IPromotionRule _promotionRule;
    private readonly HashSet<ClientRef> _subscribers = [];
    private readonly MonitorJournal _journal;
    private readonly MemberTracker _members;
    private readonly LeaseKeeper _lease;
    private readonly ConfigProposer _proposals;

    private ClusterConfig _config;
    private FailoverState _state;

    // NoCandidate is reported once per primary, however often the monitor goes in and out of that phase.
    private bool _noCandidateReported;

    /// <summary>Starts a monitor with the configuration its store held (or <see cref="ClusterConfig.Initial"/>).</summary>
    public MonitorNode(MonitorOptions options, ClusterConfig stored, IMonitorEnvironment environment, TimeProvider time, ulong incarnation, IPromotionRule? promotionRule = null)
    {
        options.Validate();
        Options = options;
        _env = environment;
        _time = time;
        _promotionRule = promotionRule ?? HighestPriorityInSyncRule.Instance;
        Incarnation = incarnation;
        _config = stored;
        var startedAt = Now;
        _journal = new MonitorJournal(options.MaxEvents, environment, time, () => _config.Epoch);
        _lease = new LeaseKeeper(options.LeaseDuration, time, startedAt);
        _proposals = new ConfigProposer(environment);
        _state = new FailoverState(stored.Epoch == 0 ? FailoverPhase.Forming : FailoverPhase.Stable);
        _members = new MemberTracker(options, time, environment, _journal, stored.Members, startedAt);

        Record(MonitorEventKind.MonitorStarted, NodeAddress.None, $"configuration {stored}");
        AssertInvariants();
    }

    public MonitorOptions Options { get; }

    public ulong Incarnation { get; }

    public ClusterConfig Config => _config;

    public FailoverPhase Phase => _state.Phase;

    public IReadOnlyCollection<MemberHealth> Members => _members.All;

    public IReadOnlyCollection<MonitorEvent> Events => _journal.Events;

    public int SubscriberCount => _subscribers.Count;

    /// <summary>Milliseconds until the lease last granted to the primary surely runs out (0 if it has).</summary>
    public double LeaseRemainingMs => _lease.RemainingMs(Now);

    /// <summary>How long ago (ms) the server's last heartbeat arrived, or null.</summary>
    public double? HeartbeatAgeMs(NodeAddress address) => _members.HeartbeatAgeMs(address, Now);

    private long Now => _time.GetTimestamp();

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private double Ms(long ticks) => ticks * 1000.0 / _time.TimestampFrequency;

    /// <summary>
    /// Throws <see cref="InvariantViolationException"/> when one of the monitor's local invariants does not hold:
    /// the configuration is coherent, the phase agrees with the data it carries and the proposal in flight, and no
    /// primary is replaced while a lease it may hold still runs. Debug builds check after every input; the
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

        if (_journal.Events.Count > Options.MaxEvents)
        {
            Violated($"{_journal.Events.Count} events kept, more than {Options.MaxEvents}");
        }

        _members.CheckInvariants();
    }

    // ------------------------------------------------------------------ inputs

    /// <summary>Periodic work: failure detection and the failover state machine.</summary>
    public void Tick()
    {
        var now = Now;
        _members.Tick(now);
        Evaluate(now);
        AssertInvariants();
    }

    /// <summary>A server's heartbeat; answered with the configuration and, for the primary, a lease.</summary>
    public void Handle(in Heartbeat heartbeat)
    {
        var now = Now;
        _members.OnHeartbeat(heartbeat, now, _config);
        Evaluate(now);

        var grant = LeaseKeeper.MayGrant(heartbeat, _config, PrimaryMayServe());
        if (grant)
        {
            _lease.Grant(now);
        }

        _env.SendToServer(heartbeat.From, new HeartbeatAck(_config, heartbeat.SentAt, grant ? _lease.DurationMs : 0, Incarnation));
        AssertInvariants();
    }

    /// <summary>The heartbeat connection from a server dropped: probe its port to tell a crash from a glitch.</summary>
    public void OnServerConnectionLost(NodeAddress server)
    {
        _members.OnConnectionLost(server);
        AssertInvariants();
    }

    /// <summary>The answer to a probe.</summary>
    public void OnProbeResult(NodeAddress server, ProbeOutcome outcome)
    {
        if (_members.OnProbeResult(server, outcome, Now))
        {
            Evaluate(Now);
        }

        AssertInvariants();
    }

    /// <summary>The configuration store's answer to <see cref="IMonitorEnvironment.ProposeConfig"/>.</summary>
    public void OnConfigStored(bool committed, ClusterConfig current)
    {
        var proposal = _proposals.Settle();
        if (current.Version >= _config.Version)
        {
            _config = current;
        }

        if (proposal is not null)
        {
            Settled(proposal, committed, current);
        }

        AssertInvariants();
    }

    /// <summary>The primary asks to change the in-sync set.</summary>
    public void Handle(in InSyncChange request)
    {
        string? refusal = null;
        if (request.From != _config.Primary || request.Epoch != _config.Epoch)
        {
            refusal = $"{request.From} is not the primary of epoch {request.Epoch} (the configuration names {_config.Primary} for epoch {_config.Epoch})";
        }
        else if (request.ExpectedVersion != _config.Version)
        {
            refusal = $"configuration version is {_config.Version}, not {request.ExpectedVersion}";
        }
        else if (_proposals.InFlight is not null || _state.Phase is not (FailoverPhase.Stable or FailoverPhase.Switchover))
        {
            refusal = $"busy ({_state.Phase})";
        }
        else if (request.Op == InSyncOp.Add && (!_config.IsMember(request.Member) || _config.IsInSync(request.Member)))
        {
            refusal = $"{request.Member} is not an out-of-sync member";
        }
        else if (request.Op == InSyncOp.Remove && (!_config.IsInSync(request.Member) || request.Member == _config.Primary))
        {
            refusal = $"{request.Member} is not an in-sync backup";
        }

        if (refusal is not null)
        {
            if (request.ExpectedVersion == _config.Version)
            {
                Record(MonitorEventKind.InSyncChangeRefused, request.Member, $"{request.Op}: {refusal}");
            }

            _env.SendToServer(request.From, new InSyncChangeResult(request.RequestId, false, _config, refusal));
        }
        else
        {
            var member = request.Member;
            var inSync = request.Op == InSyncOp.Add ? _config.InSync.Append(member) : _config.InSync.Where(a => a != member);
            _proposals.Propose(new ConfigProposal(ProposalPurpose.InSyncChange, _config.Version, _config.WithInSync(inSync), member, Now) { InSyncRequest = request });
        }

        AssertInvariants();
    }

    /// <summary>The primary's answer to a switchover's <see cref="StepDown"/>.</summary>
    public void Handle(in StepDownResult result)
    {
        var now = Now;
        if (_state.Switchover is { ReadyReceived: false } switchover && result.Epoch == _config.Epoch && result.From == _config.Primary && result.Target == switchover.Target)
        {
            if (!result.Ready)
            {
                FinishSwitchover(false, $"primary could not hand over: {result.Reason}");
                Evaluate(now);
            }
            else
            {
                _state = _state with { Switchover = switchover with { ReadyReceived = true } };
                ProposePromotion(switchover.Target, $"switchover from {_config.Primary}", forced: false, now);
            }
        }
        else if (result.Ready && result.Epoch == _config.Epoch && result.From == _config.Primary && _proposals.InFlight is null)
        {
            // A readiness this monitor will not act on: release the primary so it serves again.
            _env.SendToServer(result.From, new StepDown(result.Epoch, NodeAddress.None));
        }

        AssertInvariants();
    }

    /// <summary>A client asks who the primary is, and maybe subscribes to changes.</summary>
    public void Handle(ClientRef client, in PrimaryQuery query)
    {
        if (query.Subscribe)
        {
            _subscribers.Add(client);
        }

        _env.SendToClient(client, new PrimaryUpdate(_config.Epoch, _config.Version, _config.Primary));
    }

    /// <summary>A client or operator connection closed.</summary>
    public void OnClientDisconnected(ClientRef client) => _subscribers.Remove(client);

    /// <summary>An operator's switchover or forced promotion (status and events are read directly).</summary>
    public void Handle(ClientRef client, in AdminRequest request)
    {
        var now = Now;
        switch (request.Command)
        {
            case AdminCommand.Switchover:
                StartSwitchover(client, request, now);
                break;
            case AdminCommand.ForcePromote:
                StartForcedPromotion(client, request, now);
                break;
            default:
                _env.SendToClient(client, new AdminResponse(request.RequestId, false, $"{request.Command} is answered by the monitor host, not the failover logic", ReadOnlyMemory<byte>.Empty));
                break;
        }

        AssertInvariants();
    }

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
        _lease.StartTerm(now);
        _state = _state with { Failure = null };
        _noCandidateReported = false;
        PushConfigToServers();
        foreach (var client in _subscribers)
        {
            _env.SendToClient(client, new PrimaryUpdate(_config.Epoch, _config.Version, _config.Primary));
        }

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
        foreach (var member in _config.Members)
        {
            if (member.Address == _config.Primary && _members.TryGet(member.Address, out var p) && p.LastHeartbeat is { } hb && p.Liveness == Liveness.Alive)
            {
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

    // ------------------------------------------------------------------ operator commands

    private void StartSwitchover(ClientRef client, in AdminRequest request, long now)
    {
        string? problem = null;
        var target = request.Target;
        if (_state is not { Phase: FailoverPhase.Stable, Forced: null } || _proposals.InFlight is not null)
        {
            problem = $"the cluster is not stable (phase {_state.Phase}); try again shortly";
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

    // ------------------------------------------------------------------ helpers

    /// <summary>Whether the failover state lets the primary keep its lease: nothing is replacing it.</summary>
    private bool PrimaryMayServe() =>
        !_members.PrimaryGoneIn(_config.Epoch) &&
        _proposals.InFlight?.Purpose is not ProposalPurpose.Promotion &&
        _state.LetsPrimaryServe;

    private void SetPhase(FailoverPhase phase, NodeAddress member, string detail)
    {
        if (phase == _state.Phase)
        {
            return;
        }

        _state = _state with { Phase = phase };
        if (phase == FailoverPhase.AwaitingLeaseExpiry)
        {
            Record(MonitorEventKind.AwaitingLeaseExpiry, member, detail);
        }
        else if (phase == FailoverPhase.NoCandidate && !_noCandidateReported)
        {
            _noCandidateReported = true;
            Record(MonitorEventKind.NoCandidate, member, detail);
        }
    }

    [Conditional("DEBUG")]
    private void AssertInvariants() => CheckInvariants();

    private void Violated(string what) => throw new InvariantViolationException($"monitor: {what}");

    private void Record(MonitorEventKind kind, NodeAddress member, string detail, double? elapsedMs = null) =>
        _journal.Record(kind, member, detail, elapsedMs);
}

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
/// <para>A monitor is one of a group of 1, 3 or 5 (<see cref="MonitorLeadership"/>, fed by the host from its
/// coordinator). Every monitor tracks member health from heartbeats; only the active one grants leases
/// (while its leadership is confirmed: <see cref="IMonitorLeaseRule.MayGrant"/>), proposes configurations and probes.
/// A follower answers heartbeats with its copy of the configuration and no lease, answers clients from that copy and
/// refuses operator commands naming the active monitor. A newly active monitor renews the configured primary's lease
/// at once, gives every member a failure timeout of grace, and promotes nobody else before
/// <see cref="IMonitorLeaseRule.OthersMayBePromotedAt"/> unless the primary is known dead.</para>
/// The class is split by concern: the inputs here, the state machine in MonitorNode.StateMachine.cs, the
/// operator's commands in MonitorNode.Operator.cs and the invariants in MonitorNode.Invariants.cs.
/// </remarks>
public sealed partial class MonitorNode
{
    private readonly IMonitorEnvironment _env;
    private readonly TimeProvider _time;
    private readonly IPromotionRule _promotionRule;
    private readonly IMonitorLeaseRule _leaseRule;
    private readonly HashSet<ClientRef> _subscribers = [];
    private readonly MonitorJournal _journal;
    private readonly MemberTracker _members;
    private readonly LeaseKeeper _lease;
    private readonly ConfigProposer _proposals;

    private ClusterConfig _config;
    private FailoverState _state;

    // NoCandidate is reported once per primary, however often the monitor goes in and out of that phase.
    private bool _noCandidateReported;

    private MonitorLeadership _leadership;

    // The grant count when this monitor last stopped being active: a follower grants nothing (an invariant).
    private long _grantsWhenFollowerStarted;

    // LeadershipUnconfirmed is reported once per lapse of confirmation.
    private bool _unconfirmedReported;

    // The configured primary's latest heartbeat and when it arrived, kept while a follower too, so a newly confirmed
    // active monitor can renew the lease at once (MonitorNode.Leadership.cs); the term that renewal was last made in.
    private (Heartbeat Beat, long ReceivedAt)? _primaryBeat;
    private long _renewedOnConfirmationTerm = -1;

    /// <summary>Starts a monitor with the configuration its store held (or <see cref="ClusterConfig.Initial"/>).</summary>
    /// <param name="options">Validated here.</param>
    /// <param name="stored">The committed configuration (for a group, the coordinator's).</param>
    /// <param name="environment">Where messages, probes and proposals go.</param>
    /// <param name="time">The monotonic clock (and wall clock for events).</param>
    /// <param name="incarnation">Random per process start.</param>
    /// <param name="promotionRule">Who to promote (tests swap in broken rules); null for <see cref="HighestPriorityInSyncRule"/>.</param>
    /// <param name="leaseRule">When to grant and when others may be promoted (tests swap in broken rules); null for <see cref="ConfirmedLeadershipLeaseRule"/>.</param>
    /// <param name="leadership">The group's view at start; null for a group of one (<see cref="MonitorLeadership.GroupOfOne"/>: active forever).</param>
    public MonitorNode(MonitorOptions options, ClusterConfig stored, IMonitorEnvironment environment, TimeProvider time, ulong incarnation, IPromotionRule? promotionRule = null, IMonitorLeaseRule? leaseRule = null, MonitorLeadership? leadership = null)
    {
        options.Validate();
        Options = options;
        _env = environment;
        _time = time;
        _promotionRule = promotionRule ?? HighestPriorityInSyncRule.Instance;
        _leaseRule = leaseRule ?? ConfirmedLeadershipLeaseRule.Instance;
        _leadership = leadership ?? MonitorLeadership.GroupOfOne;
        Incarnation = incarnation;
        _config = stored;
        var startedAt = Now;
        _journal = new MonitorJournal(options.MaxEvents, environment, time, () => _config.Epoch);
        _lease = new LeaseKeeper(options.LeaseDuration, time, startedAt);
        _proposals = new ConfigProposer(environment);
        _state = new FailoverState(stored.Epoch == 0 ? FailoverPhase.Forming : FailoverPhase.Stable);
        _members = new MemberTracker(options, time, environment, _journal, stored.Members, startedAt);
        _lease.AssumeHolder(stored.Primary);
        if (_leadership.IsActive)
        {
            // Starting active is becoming active: earlier monitors (or this one's previous life) may have granted leases.
            _lease.AwaitEarlierMonitors(_leaseRule.OthersMayBePromotedAt(new LeaseWaitView(startedAt, _leadership.Term, _lease.DurationTicks, Ticks(options.MaxClockDrift))));
        }

        Record(MonitorEventKind.MonitorStarted, NodeAddress.None, $"configuration {stored}; {(_leadership.IsActive ? "active" : "follower")} in term {_leadership.Term}");
        AssertInvariants();
    }

    public MonitorOptions Options { get; }

    public ulong Incarnation { get; }

    public ClusterConfig Config => _config;

    public FailoverPhase Phase => _state.Phase;

    public IReadOnlyCollection<MemberHealth> Members => _members.All;

    public IReadOnlyCollection<MonitorEvent> Events => _journal.Events;

    public int SubscriberCount => _subscribers.Count;

    /// <summary>The monitor group's view as last handed to <see cref="OnLeadership"/> (or to the constructor).</summary>
    public MonitorLeadership Leadership => _leadership;

    /// <summary>Whether this monitor is the active one of its group.</summary>
    public bool IsActive => _leadership.IsActive;

    /// <summary>Milliseconds until this monitor, newly active, may promote a server other than the configured primary (0 once it may).</summary>
    public double EarlierLeasesRemainingMs => Math.Max(0, Ms(_lease.InheritedUntil - Now));

    /// <summary>Milliseconds until the lease last granted to the primary surely runs out (0 if it has).</summary>
    public double LeaseRemainingMs => _lease.RemainingMs(Now);

    /// <summary>How long ago (ms) the server's last heartbeat arrived, or null.</summary>
    public double? HeartbeatAgeMs(NodeAddress address) => _members.HeartbeatAgeMs(address, Now);

    private long Now => _time.GetTimestamp();

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private double Ms(long ticks) => ticks * 1000.0 / _time.TimestampFrequency;

    // ------------------------------------------------------------------ inputs

    /// <summary>Periodic work: failure detection and the failover state machine.</summary>
    public void Tick()
    {
        var now = Now;
        _members.Tick(now, mayProbe: IsActive);
        if (IsActive)
        {
            Evaluate(now);
        }

        AssertInvariants();
    }

    /// <summary>A server's heartbeat; answered with the configuration and, for the primary, a lease.</summary>
    public void Handle(in Heartbeat heartbeat)
    {
        var now = Now;
        _members.OnHeartbeat(heartbeat, now, _config);
        if (IsActive)
        {
            Evaluate(now);
        }

        if (heartbeat.From == _config.Primary)
        {
            _primaryBeat = (heartbeat, now);
        }

        var grant = TryGrantLease(heartbeat, now);
        _env.SendToServer(heartbeat.From, new HeartbeatAck(_config, heartbeat.SentAt, grant ? _lease.DurationMs : 0, Incarnation, _leadership.Term, IsActive));
        AssertInvariants();
    }

    // Renewing the configured primary is safe at once after a change of active monitor (rule 3): only
    // confirmed leadership is needed, never the wait for earlier monitors' leases.
    private bool TryGrantLease(in Heartbeat heartbeat, long now)
    {
        var grant = IsActive && LeaseKeeper.MayGrant(heartbeat, _config, PrimaryMayServe()) && _lease.MayGrantTo(heartbeat.From, now) && MayGrantNow(now);
        if (grant)
        {
            _lease.Grant(heartbeat.From, now, _leadership.ConfirmedUntil);
        }

        return grant;
    }

    /// <summary>The heartbeat connection from a server dropped: probe its port to tell a crash from a glitch.</summary>
    public void OnServerConnectionLost(NodeAddress server)
    {
        _members.OnConnectionLost(server, mayProbe: IsActive);
        AssertInvariants();
    }

    /// <summary>The answer to a probe.</summary>
    public void OnProbeResult(NodeAddress server, ProbeOutcome outcome)
    {
        if (_members.OnProbeResult(server, outcome, Now) && IsActive)
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

        if (proposal is null && _state.Phase == FailoverPhase.Forming && _config.Epoch > 0)
        {
            // A follower's answer to a write it made while still active: the cluster has formed.
            _state = new FailoverState(FailoverPhase.Stable);
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
        if (!IsActive)
        {
            refusal = NotActiveMessage();
        }
        else if (request.From != _config.Primary || request.Epoch != _config.Epoch)
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
            if (request.ExpectedVersion == _config.Version && IsActive)
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
        if (!IsActive)
        {
            // Meant for the active monitor (the server routes by the last ack from it); a switchover this monitor
            // started was called off when it stopped being active.
        }
        else if (_state.Switchover is { ReadyReceived: false } switchover && result.Epoch == _config.Epoch && result.From == _config.Primary && result.Target == switchover.Target)
        {
            if (!result.Ready)
            {
                FinishSwitchover(false, $"primary could not hand over: {result.Reason}");
                Evaluate(now);
            }
            else
            {
                // From here on the primary never serves in this epoch: no lease is granted, and the promotion goes
                // to the store as soon as nothing else is in flight there.
                _state = _state with { Switchover = switchover with { ReadyReceived = true } };
                SetPhase(FailoverPhase.Promoting, switchover.Target, $"switchover from {_config.Primary}");
                if (_proposals.InFlight is null)
                {
                    ProposeSwitchoverPromotion(now);
                }
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

        _env.SendToClient(client, PrimaryUpdateNow());
        AssertInvariants();
    }

    /// <summary>A client or operator connection closed.</summary>
    public void OnClientDisconnected(ClientRef client)
    {
        _subscribers.Remove(client);
        AssertInvariants();
    }

    /// <summary>An operator's switchover or forced promotion (status and events are read directly).</summary>
    public void Handle(ClientRef client, in AdminRequest request)
    {
        var now = Now;
        if (!IsActive && request.Command is AdminCommand.Switchover or AdminCommand.ForcePromote)
        {
            _env.SendToClient(client, new AdminResponse(request.RequestId, false, $"{request.Command} refused: {NotActiveMessage()}", ReadOnlyMemory<byte>.Empty) { ActiveMonitor = _leadership.Active });
            AssertInvariants();
            return;
        }

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

    // ------------------------------------------------------------------ helpers

    /// <summary>Whether the failover state lets the primary keep its lease: nothing is replacing it.</summary>
    /// <remarks>
    /// A server reporting an epoch newer than the configuration means this copy is stale (a newer primary was
    /// stored through another monitor): no lease until the newer configuration arrives.
    /// </remarks>
    private bool PrimaryMayServe() =>
        !_members.PrimaryGoneIn(_config.Epoch) &&
        _members.HighestEpochReported() <= _config.Epoch &&
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

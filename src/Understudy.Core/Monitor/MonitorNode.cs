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
/// The class is split by concern: the inputs here, the state machine in MonitorNode.StateMachine.cs, the
/// operator's commands in MonitorNode.Operator.cs and the invariants in MonitorNode.Invariants.cs.
/// </remarks>
public sealed partial class MonitorNode
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

        _env.SendToClient(client, new PrimaryUpdate(_config.Epoch, _config.Version, _config.Primary));
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

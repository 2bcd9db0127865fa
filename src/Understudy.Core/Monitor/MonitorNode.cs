using Understudy.Core.FailureDetection;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>The monitor's failover state machine: where it stands with the current primary.</summary>
public enum FailoverPhase
{
    /// <summary>No configuration yet: waiting for servers to form the cluster.</summary>
    Forming,

    /// <summary>The primary is alive and holds its lease.</summary>
    Stable,

    /// <summary>The primary missed heartbeats; it may only be slow, and its lease may still run.</summary>
    PrimarySuspected,

    /// <summary>The primary is judged failed, but its lease may still run: nobody is promoted before it surely expires.</summary>
    AwaitingLeaseExpiry,

    /// <summary>A new configuration naming the next primary is being stored.</summary>
    Promoting,

    /// <summary>The primary failed and no alive in-sync server can take over: waiting (nothing acknowledged is lost).</summary>
    NoCandidate,

    /// <summary>A planned handover is under way.</summary>
    Switchover,
}

/// <summary>How the monitor currently judges a server.</summary>
public enum Liveness
{
    /// <summary>Not heard from since the monitor started.</summary>
    Unknown,
    Alive,
    Suspected,

    /// <summary>Known dead: its connection dropped and its port refused a probe.</summary>
    Down,
}

/// <summary>What the monitor knows of one server.</summary>
public sealed class MemberHealth
{
    internal MemberHealth(NodeAddress address, IFailureDetector detector)
    {
        Address = address;
        Detector = detector;
    }

    public NodeAddress Address { get; }

    public ulong Incarnation { get; internal set; }

    public Liveness Liveness { get; internal set; }

    /// <summary>The last heartbeat received, or null.</summary>
    public Heartbeat? LastHeartbeat { get; internal set; }

    /// <summary>Monotonic timestamp of the last heartbeat.</summary>
    public long LastHeartbeatAt { get; internal set; } = long.MinValue;

    /// <summary>The heartbeat connection dropped and no heartbeat has come since.</summary>
    public bool ConnectionLost { get; internal set; }

    /// <summary>A probe of its port has been asked for and not yet answered.</summary>
    internal bool ProbeInFlight { get; set; }

    /// <summary>When to probe again while the connection stays lost and the port has not refused yet.</summary>
    internal long NextProbeAt { get; set; } = long.MaxValue;

    /// <summary>It restarted without fsync=always: what it acknowledged may be gone until it catches up again.</summary>
    public bool LostUnsyncedWrites { get; internal set; }

    public string DownReason { get; internal set; } = string.Empty;

    internal IFailureDetector Detector { get; }
}

/// <summary>
/// The monitor's protocol logic: judges servers from heartbeats and connection signals, grants the
/// primary its lease, promotes the best in-sync backup when the primary fails, keeps the configuration
/// through compare-and-set, and tells clients where the primary is. It does no I/O (see
/// <see cref="IMonitorEnvironment"/>) and is not thread-safe: the adapter feeds it from one loop.
/// </summary>
public sealed class MonitorNode
{
    private readonly IMonitorEnvironment _env;
    private readonly TimeProvider _time;
    private readonly IPromotionRule _promotionRule;
    private readonly FailureDetectorFactory _detectorFactory;
    private readonly Dictionary<NodeAddress, MemberHealth> _members = [];
    private readonly HashSet<ClientRef> _subscribers = [];
    private readonly LinkedList<MonitorEvent> _events = new();
    private readonly long _startedAt;

    private ClusterConfig _config;
    private FailoverPhase _phase;
    private long _leaseExpiry;
    private long _primaryGoneEpoch = -1;
    private Failure? _failure;
    private Proposal? _proposal;
    private SwitchoverState? _switchover;
    private ForcedState? _forced;
    private long _firstHeartbeatAt = long.MinValue;
    private long _lastTickAt = long.MinValue;
    private long _suspectNotBefore = long.MinValue;
    private long _eventSequence;
    private bool _noCandidateReported;

    /// <summary>Starts a monitor with the configuration its store held (or <see cref="ClusterConfig.Initial"/>).</summary>
    public MonitorNode(MonitorOptions options, ClusterConfig stored, IMonitorEnvironment environment, TimeProvider time, ulong incarnation, IPromotionRule? promotionRule = null)
    {
        options.Validate();
        Options = options;
        _env = environment;
        _time = time;
        _promotionRule = promotionRule ?? HighestPriorityInSyncRule.Instance;
        _detectorFactory = options.CreateDetector();
        Incarnation = incarnation;
        _config = stored;
        _startedAt = Now;

        // A restarted monitor cannot know what lease it granted last: assume a full one from now.
        _leaseExpiry = _startedAt + Ticks(options.LeaseDuration);
        _phase = stored.Epoch == 0 ? FailoverPhase.Forming : FailoverPhase.Stable;
        foreach (var m in stored.Members)
        {
            var health = NewMember(m.Address);
            health.Detector.Heartbeat(_startedAt);
        }

        Record(MonitorEventKind.MonitorStarted, NodeAddress.None, $"configuration {stored}");
    }

    public MonitorOptions Options { get; }

    public ulong Incarnation { get; }

    public ClusterConfig Config => _config;

    public FailoverPhase Phase => _phase;

    public IReadOnlyCollection<MemberHealth> Members => _members.Values;

    public IReadOnlyCollection<MonitorEvent> Events => _events;

    public int SubscriberCount => _subscribers.Count;

    /// <summary>Milliseconds until the lease last granted to the primary surely runs out (0 if it has).</summary>
    public double LeaseRemainingMs => Math.Max(0, (_leaseExpiry - Now) * 1000.0 / _time.TimestampFrequency);

    /// <summary>How long ago (ms) the server's last heartbeat arrived, or null.</summary>
    public double? HeartbeatAgeMs(NodeAddress address) =>
        _members.TryGetValue(address, out var m) && m.LastHeartbeatAt != long.MinValue ? (Now - m.LastHeartbeatAt) * 1000.0 / _time.TimestampFrequency : null;

    private long Now => _time.GetTimestamp();

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private double Ms(long ticks) => ticks * 1000.0 / _time.TimestampFrequency;

    // ------------------------------------------------------------------ inputs

    /// <summary>Periodic work: failure detection and the failover state machine.</summary>
    public void Tick()
    {
        var now = Now;

        // A monitor that was itself stalled (CPU starvation, a GC pause, SIGSTOP) has not read the heartbeats
        // waiting for it yet: give them a moment to be heard before suspecting anyone. This only delays the slow
        // path (which also waits for the lease); a crash is still seen at once through the connection and probe.
        if (_lastTickAt != long.MinValue && now - _lastTickAt > Ticks(Options.SelfStallThreshold))
        {
            _suspectNotBefore = now + Ticks(Options.HeartbeatInterval * 2);
        }

        _lastTickAt = now;
        var maySuspect = now >= _suspectNotBefore;
        foreach (var m in _members.Values)
        {
            if (maySuspect && m.Liveness is Liveness.Alive or Liveness.Unknown && m.Detector.IsSuspected(now))
            {
                m.Liveness = Liveness.Suspected;
                Record(MonitorEventKind.MemberSuspected, m.Address, $"no heartbeat for {Ms(now - Math.Max(m.LastHeartbeatAt, _startedAt)):0} ms");
            }

            // A killed process may close its heartbeat connection a moment before its listening socket: a probe
            // in that moment is accepted. Probe again while the connection stays lost, so the crash is still
            // seen in milliseconds rather than after the failure timeout and the lease.
            if (m.ConnectionLost && !m.ProbeInFlight && m.Liveness != Liveness.Down && now >= m.NextProbeAt)
            {
                StartProbe(m);
            }
        }

        Evaluate(now);
    }

    /// <summary>A server's heartbeat; answered with the configuration and, for the primary, a lease.</summary>
    public void Handle(in Heartbeat heartbeat)
    {
        var now = Now;
        if (_firstHeartbeatAt == long.MinValue)
        {
            _firstHeartbeatAt = now;
        }

        var m = _members.GetValueOrDefault(heartbeat.From) ?? NewMember(heartbeat.From);
        var restarted = m.Incarnation != 0 && m.Incarnation != heartbeat.Incarnation;
        m.Incarnation = heartbeat.Incarnation;
        m.LastHeartbeat = heartbeat;
        m.LastHeartbeatAt = now;
        m.ConnectionLost = false;
        m.NextProbeAt = long.MaxValue;
        m.Detector.Heartbeat(now);
        if (m.Liveness != Liveness.Alive)
        {
            var was = m.Liveness;
            m.Liveness = Liveness.Alive;
            m.DownReason = string.Empty;
            if (was != Liveness.Unknown || _config.IsMember(m.Address))
            {
                Record(MonitorEventKind.MemberUp, m.Address, $"heartbeats resumed ({was.ToString().ToLowerInvariant()} before), log ends at {heartbeat.LastIndex}");
            }
        }

        if (restarted)
        {
            Record(MonitorEventKind.MemberRestarted, m.Address, heartbeat.Durable ? "new process; its log was fsynced" : "new process without fsync=always: out of sync until it catches up");
            if (!heartbeat.Durable)
            {
                m.LostUnsyncedWrites = true;
            }
        }

        // The primary of this epoch is gone when its server says it is a backup in that very epoch: a restarted
        // process never leads the epoch it recovered with. A new process that has not heard of the epoch yet
        // will take the promotion from this heartbeat's answer, unless it may have lost writes it acknowledged.
        // (An incarnation change alone proves nothing: the new process may be the one that took the promotion.)
        if (_config.Epoch > 0 && heartbeat.From == _config.Primary && heartbeat.Role == ServerRole.Backup &&
            (heartbeat.Epoch >= _config.Epoch || (restarted && !heartbeat.Durable)))
        {
            _primaryGoneEpoch = _config.Epoch;
        }

        Evaluate(now);

        var grant = MayGrantLease(heartbeat);
        if (grant)
        {
            _leaseExpiry = Math.Max(_leaseExpiry, now + Ticks(Options.LeaseDuration));
        }

        _env.SendToServer(heartbeat.From, new HeartbeatAck(_config, heartbeat.SentAt, grant ? (int)Options.LeaseDuration.TotalMilliseconds : 0, Incarnation));
    }

    /// <summary>The heartbeat connection from a server dropped: probe its port to tell a crash from a glitch.</summary>
    public void OnServerConnectionLost(NodeAddress server)
    {
        if (_members.TryGetValue(server, out var m) && m.Liveness != Liveness.Down)
        {
            m.ConnectionLost = true;
            if (!m.ProbeInFlight)
            {
                StartProbe(m);
            }
        }
    }

    /// <summary>The answer to a probe.</summary>
    public void OnProbeResult(NodeAddress server, ProbeOutcome outcome)
    {
        if (!_members.TryGetValue(server, out var m))
        {
            return;
        }

        m.ProbeInFlight = false;
        if (!m.ConnectionLost || m.Liveness == Liveness.Down)
        {
            return;
        }

        if (outcome != ProbeOutcome.Refused)
        {
            // Not proof of death (a paused process, a partition, or a dying one whose port is still open): ask again soon.
            m.NextProbeAt = Now + Ticks(Options.ReprobeInterval);
            return;
        }

        m.Liveness = Liveness.Down;
        m.DownReason = "connection reset and port refused";
        Record(MonitorEventKind.MemberDown, server, m.DownReason);
        Evaluate(Now);
    }

    /// <summary>The configuration store's answer to <see cref="IMonitorEnvironment.ProposeConfig"/>.</summary>
    public void OnConfigStored(bool committed, ClusterConfig current)
    {
        var proposal = _proposal;
        _proposal = null;
        if (current.Version >= _config.Version)
        {
            _config = current;
        }

        if (proposal is null)
        {
            return;
        }

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
                if (request.Op == InSyncOp.Add && _members.TryGetValue(request.Member, out var added))
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
        else if (_proposal is not null || _phase is not (FailoverPhase.Stable or FailoverPhase.Switchover))
        {
            refusal = $"busy ({_phase})";
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
            return;
        }

        var member = request.Member;
        var inSync = request.Op == InSyncOp.Add ? _config.InSync.Append(member) : _config.InSync.Where(a => a != member);
        Propose(new Proposal(ProposalPurpose.InSyncChange, _config.Version, _config.WithInSync(inSync), member, Now) { InSyncRequest = request });
    }

    /// <summary>The primary's answer to a switchover's <see cref="StepDown"/>.</summary>
    public void Handle(in StepDownResult result)
    {
        var now = Now;
        if (_switchover is not { ReadyReceived: false } switchover || result.Epoch != _config.Epoch || result.From != _config.Primary || result.Target != switchover.Target)
        {
            if (result.Ready && result.Epoch == _config.Epoch && result.From == _config.Primary && _proposal is null)
            {
                // A readiness this monitor will not act on: release the primary so it serves again.
                _env.SendToServer(result.From, new StepDown(result.Epoch, NodeAddress.None));
            }

            return;
        }

        if (!result.Ready)
        {
            FinishSwitchover(false, $"primary could not hand over: {result.Reason}");
            Evaluate(now);
            return;
        }

        _switchover = switchover with { ReadyReceived = true };
        ProposePromotion(switchover.Target, $"switchover from {_config.Primary}", forced: false, now);
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
    }

    private void StartProbe(MemberHealth m)
    {
        m.ProbeInFlight = true;
        m.NextProbeAt = long.MaxValue;
        _env.Probe(m.Address);
    }

    // ------------------------------------------------------------------ the failover state machine

    private void Evaluate(long now)
    {
        if (_proposal is not null)
        {
            return;
        }

        if (_config.Epoch == 0)
        {
            Bootstrap(now);
            return;
        }

        var failed = PrimaryFailed(now, out var knownDead);
        if (_forced is { } forced)
        {
            // No lease is granted while a forced promotion waits, so even a healthy primary's lease runs out.
            if (!knownDead && now < _leaseExpiry)
            {
                SetPhase(FailoverPhase.AwaitingLeaseExpiry, _config.Primary, $"forced promotion of {forced.Target} waits for the lease of {_config.Primary} to expire");
                return;
            }

            ProposePromotion(forced.Target, "forced by an operator", forced: true, now);
            return;
        }

        if (_switchover is { } switchover)
        {
            if (failed)
            {
                FinishSwitchover(false, "the primary failed during the switchover; failing over instead");
            }
            else if (now > switchover.Deadline)
            {
                _env.SendToServer(_config.Primary, new StepDown(_config.Epoch, NodeAddress.None));
                FinishSwitchover(false, $"{switchover.Target} did not catch up within {Options.SwitchoverTimeout.TotalSeconds:0.#} s");
                return;
            }
            else
            {
                return;
            }
        }

        if (failed)
        {
            if (!knownDead && now < _leaseExpiry)
            {
                SetPhase(FailoverPhase.AwaitingLeaseExpiry, _config.Primary, $"waiting {Ms(_leaseExpiry - now):0} ms for its lease to expire");
                return;
            }

            var candidate = _promotionRule.ChooseCandidate(BuildPromotionView());
            if (candidate.IsNone)
            {
                SetPhase(FailoverPhase.NoCandidate, _config.Primary, $"no alive in-sync server can take over; in-sync set [{string.Join(", ", _config.InSync)}]");
                return;
            }

            ProposePromotion(candidate, _failure?.How ?? "primary failed", forced: false, now);
            return;
        }

        SetPhase(FailoverPhase.Stable, _config.Primary, string.Empty);
        Housekeeping(now);
    }

    /// <summary>Whether the primary of the current epoch has failed, and whether its death is certain.</summary>
    private bool PrimaryFailed(long now, out bool knownDead)
    {
        knownDead = false;
        string? how = null;
        if (_config.Primary.IsNone)
        {
            knownDead = true;
            how = "no primary";
        }
        else if (_primaryGoneEpoch == _config.Epoch)
        {
            knownDead = true;
            how = "primary restarted";
        }
        else if (_members.TryGetValue(_config.Primary, out var p))
        {
            if (p.Liveness == Liveness.Down)
            {
                knownDead = true;
                how = "primary crashed (connection reset, port refused)";
            }
            else if (p.Liveness == Liveness.Suspected)
            {
                how = "primary missed heartbeats";
            }
        }
        else
        {
            how = "primary unknown to this monitor";
        }

        if (how is null)
        {
            if (_failure is not null)
            {
                _failure = null;
            }

            return false;
        }

        if (_failure is null || _failure.Epoch != _config.Epoch)
        {
            _failure = new Failure(_config.Epoch, now, how);
            Record(MonitorEventKind.PrimaryFailed, _config.Primary, how);
        }
        else if (knownDead && !_failure.How.Contains("crashed", StringComparison.Ordinal) && !_failure.How.Contains("restarted", StringComparison.Ordinal))
        {
            _failure = _failure with { How = how };
        }

        return true;
    }

    private void Bootstrap(long now)
    {
        var alive = _members.Values.Where(m => m.Liveness == Liveness.Alive && m.LastHeartbeat is not null).ToList();
        if (alive.Count == 0)
        {
            SetPhase(FailoverPhase.Forming, NodeAddress.None, "waiting for servers");
            return;
        }

        if (now - _firstHeartbeatAt < Ticks(Options.BootstrapDelay))
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
        Propose(new Proposal(ProposalPurpose.Bootstrap, _config.Version, next, best.Address, now));
    }

    private void ProposePromotion(NodeAddress candidate, string reason, bool forced, long now)
    {
        var oldPrimary = _config.Primary;

        // Keep in the in-sync set only members alive now (the new primary would ask the rest out anyway).
        var inSync = forced
            ? [candidate]
            : _config.InSync.Where(a => a == candidate || (_members.TryGetValue(a, out var m) && m.Liveness == Liveness.Alive && !m.LostUnsyncedWrites && (a != oldPrimary || _switchover is not null || _primaryGoneEpoch == _config.Epoch))).ToList();
        var next = _config with
        {
            Epoch = _config.Epoch + 1,
            Version = _config.Version + 1,
            Primary = candidate,
            InSync = [.. inSync.Distinct().Order()],
        };
        SetPhase(FailoverPhase.Promoting, candidate, reason);
        Propose(new Proposal(ProposalPurpose.Promotion, _config.Version, next, candidate, now) { Reason = reason, OldPrimary = oldPrimary, DetectedAt = _failure?.DetectedAt });
    }

    private void AfterNewPrimary(Proposal proposal)
    {
        var now = Now;
        _leaseExpiry = now + Ticks(Options.LeaseDuration);
        _failure = null;
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

        if (_switchover is { } switchover)
        {
            var ms = Ms(now - switchover.StartedAt);
            _env.SendToClient(switchover.Client, new AdminResponse(switchover.RequestId, true, $"switched over to {_config.Primary} (epoch {_config.Epoch}) in {ms:0} ms", ReadOnlyMemory<byte>.Empty));
            Record(MonitorEventKind.SwitchoverCompleted, _config.Primary, $"from {proposal.OldPrimary}", ms);
            _switchover = null;
        }

        if (_forced is { } forced)
        {
            _env.SendToClient(forced.Client, new AdminResponse(forced.RequestId, true, $"forced promotion done: {_config.Primary} leads epoch {_config.Epoch}; writes acknowledged by others and missing from its log are lost", ReadOnlyMemory<byte>.Empty));
            _forced = null;
        }

        SetPhase(FailoverPhase.Stable, _config.Primary, string.Empty);
    }

    private void PushConfigToServers()
    {
        foreach (var member in _config.Members)
        {
            if (member.Address == _config.Primary && _members.TryGetValue(member.Address, out var p) && p.LastHeartbeat is { } hb && p.Liveness == Liveness.Alive)
            {
                _env.SendToServer(member.Address, new ConfigPush(_config, hb.SentAt, (int)Options.LeaseDuration.TotalMilliseconds));
            }
            else
            {
                _env.SendToServer(member.Address, new ConfigPush(_config, 0, 0));
            }
        }
    }

    private void Housekeeping(long now)
    {
        foreach (var m in _members.Values.OrderBy(m => m.Address))
        {
            if (m.Liveness != Liveness.Alive || m.LastHeartbeat is not { } hb)
            {
                continue;
            }

            if (!_config.IsMember(m.Address) || _config.PriorityOf(m.Address) != hb.Priority)
            {
                Propose(new Proposal(ProposalPurpose.Membership, _config.Version, _config.WithMember(new MemberInfo(m.Address, hb.Priority)), m.Address, now));
                return;
            }

            if (m.LostUnsyncedWrites && _config.IsInSync(m.Address) && m.Address != _config.Primary)
            {
                Propose(new Proposal(ProposalPurpose.ResyncRemoval, _config.Version, _config.WithInSync(_config.InSync.Where(a => a != m.Address)), m.Address, now));
                return;
            }
        }
    }

    private void StartSwitchover(ClientRef client, in AdminRequest request, long now)
    {
        string? problem = null;
        var target = request.Target;
        if (_phase != FailoverPhase.Stable || _proposal is not null || _forced is not null)
        {
            problem = $"the cluster is not stable (phase {_phase}); try again shortly";
        }
        else
        {
            if (target.IsNone)
            {
                target = _promotionRule.ChooseCandidate(BuildPromotionView());
            }

            if (target.IsNone)
            {
                problem = "no alive in-sync backup to hand over to";
            }
            else if (target == _config.Primary)
            {
                problem = $"{target} is already the primary";
            }
            else if (!_config.IsInSync(target) || !_members.TryGetValue(target, out var t) || t.Liveness != Liveness.Alive)
            {
                problem = $"{target} is not an alive in-sync backup; in-sync set [{string.Join(", ", _config.InSync)}]";
            }
        }

        if (problem is not null)
        {
            _env.SendToClient(client, new AdminResponse(request.RequestId, false, problem, ReadOnlyMemory<byte>.Empty));
            return;
        }

        _switchover = new SwitchoverState(target, client, request.RequestId, now, now + Ticks(Options.SwitchoverTimeout));
        SetPhase(FailoverPhase.Switchover, target, $"handing over from {_config.Primary}");
        Record(MonitorEventKind.SwitchoverStarted, target, $"from {_config.Primary}");
        _env.SendToServer(_config.Primary, new StepDown(_config.Epoch, target));
    }

    private void FinishSwitchover(bool ok, string message)
    {
        if (_switchover is not { } switchover)
        {
            return;
        }

        _switchover = null;
        Record(ok ? MonitorEventKind.SwitchoverCompleted : MonitorEventKind.SwitchoverFailed, switchover.Target, message);
        _env.SendToClient(switchover.Client, new AdminResponse(switchover.RequestId, ok, message, ReadOnlyMemory<byte>.Empty));
        SetPhase(FailoverPhase.Stable, _config.Primary, string.Empty);
    }

    private void StartForcedPromotion(ClientRef client, in AdminRequest request, long now)
    {
        string? problem = null;
        if (!_members.TryGetValue(request.Target, out var target) || !_config.IsMember(request.Target))
        {
            problem = $"{request.Target} is not a member of this cluster";
        }
        else if (target.Liveness != Liveness.Alive)
        {
            problem = $"{request.Target} is not alive ({target.Liveness})";
        }
        else if (request.Target == _config.Primary && _primaryGoneEpoch != _config.Epoch)
        {
            problem = $"{request.Target} is already the primary";
        }
        else if (_proposal is not null || _switchover is not null || _forced is not null)
        {
            problem = "another configuration change is under way; try again shortly";
        }

        if (problem is not null)
        {
            _env.SendToClient(client, new AdminResponse(request.RequestId, false, problem, ReadOnlyMemory<byte>.Empty));
            return;
        }

        var hb = target!.LastHeartbeat!.Value;
        var longest = _members.Values.Where(m => m.LastHeartbeat is not null).Max(m => m.LastHeartbeat!.Value.LastIndex);
        var warning = _config.IsInSync(request.Target)
            ? $"{request.Target} is in sync: nothing acknowledged should be lost"
            : $"UNSAFE: {request.Target} is out of sync (log ends at {hb.LastIndex}, longest known log {longest}); acknowledged writes after its log end will be lost";
        _forced = new ForcedState(request.Target, client, request.RequestId);
        Record(MonitorEventKind.ForcedPromotion, request.Target, warning);
        Evaluate(now);
    }

    // ------------------------------------------------------------------ helpers

    private bool MayGrantLease(in Heartbeat heartbeat) =>
        _config.Epoch > 0 &&
        heartbeat.From == _config.Primary &&
        heartbeat.Epoch == _config.Epoch &&
        heartbeat.Role == ServerRole.Primary &&
        _primaryGoneEpoch != _config.Epoch &&
        _forced is null &&
        _proposal?.Purpose is not ProposalPurpose.Promotion &&
        _switchover is not { ReadyReceived: true } &&
        _phase is FailoverPhase.Stable or FailoverPhase.Switchover;

    private PromotionView BuildPromotionView()
    {
        var candidates = new List<PromotionCandidate>(_config.Members.Length);
        foreach (var member in _config.Members)
        {
            var m = _members.GetValueOrDefault(member.Address);
            var hb = m?.LastHeartbeat;
            candidates.Add(new PromotionCandidate(
                member.Address,
                member.Priority,
                m is { Liveness: Liveness.Alive } && hb is not null,
                _config.IsInSync(member.Address),
                hb?.Role ?? ServerRole.Backup,
                hb?.LastIndex ?? 0,
                hb?.LastEpoch ?? 0,
                hb?.Durable ?? false,
                m?.LostUnsyncedWrites ?? false));
        }

        return new PromotionView(_config, _config.Primary, candidates);
    }

    private void Propose(Proposal proposal)
    {
        _proposal = proposal;
        _env.ProposeConfig(proposal.ExpectedVersion, proposal.Next);
    }

    private MemberHealth NewMember(NodeAddress address)
    {
        var m = new MemberHealth(address, _detectorFactory(_time.TimestampFrequency));
        _members[address] = m;
        return m;
    }

    private void SetPhase(FailoverPhase phase, NodeAddress member, string detail)
    {
        if (phase == _phase)
        {
            return;
        }

        _phase = phase;
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

    private void Record(MonitorEventKind kind, NodeAddress member, string detail, double? elapsedMs = null)
    {
        var e = new MonitorEvent(++_eventSequence, _time.GetUtcNow(), kind, member, _config.Epoch, detail, elapsedMs);
        _events.AddLast(e);
        while (_events.Count > Options.MaxEvents)
        {
            _events.RemoveFirst();
        }

        _env.Report(e);
    }

    private enum ProposalPurpose
    {
        Bootstrap,
        Promotion,
        InSyncChange,
        ResyncRemoval,
        Membership,
    }

    private sealed record Proposal(ProposalPurpose Purpose, long ExpectedVersion, ClusterConfig Next, NodeAddress Subject, long StartedAt)
    {
        public InSyncChange? InSyncRequest { get; init; }

        public string Reason { get; init; } = string.Empty;

        public NodeAddress OldPrimary { get; init; } = NodeAddress.None;

        public long? DetectedAt { get; init; }
    }

    private sealed record Failure(long Epoch, long DetectedAt, string How);

    private sealed record SwitchoverState(NodeAddress Target, ClientRef Client, long RequestId, long StartedAt, long Deadline, bool ReadyReceived = false);

    private sealed record ForcedState(NodeAddress Target, ClientRef Client, long RequestId);
}

using System.Text;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// The protocol logic of one server, as primary or backup. It does no I/O: messages, sync completions
/// and ticks come in; messages, log writes and events go out through <see cref="IServerEnvironment"/>.
/// Not thread-safe: the adapter feeds it from one loop.
/// </summary>
/// <remarks>
/// The rules it keeps (DESIGN.md, "Safety"):
/// a write is acknowledged only once every in-sync member holds it durably (<see cref="ICommitRule"/>);
/// the in-sync set changes only through the monitor; a backup refuses frames from an older epoch and
/// frames whose previous entry does not match, and never truncates a committed entry; the primary
/// serves only while its lease from the monitor runs; a restarted server never leads the epoch it
/// recovered with.
/// </remarks>
public sealed class ServerNode
{
    private readonly IServerEnvironment _env;
    private readonly TimeProvider _time;
    private readonly ICommitRule _commitRule;
    private readonly CommitView _commitView;
    private readonly ReplicatedLog _log;
    private readonly long _recoveredEpoch;
    private readonly Dictionary<NodeAddress, FollowerProgress> _followers = [];
    private readonly Dictionary<long, Waiter> _waiters = [];
    private readonly Dictionary<long, List<Waiter>> _extraWaiters = [];
    private readonly Dictionary<(ulong ClientId, long Seq), long> _inflightWrites = [];
    private readonly Dictionary<NodeAddress, long> _pendingAdds = [];

    private long _epoch;
    private ServerRole _role = ServerRole.Backup;
    private NodeAddress _primary = NodeAddress.None;
    private ClusterConfig _config = ClusterConfig.Initial;
    private long _commitIndex;
    private long _durableIndex;
    private long _syncRequested;
    private long _syncGeneration;
    private long _lastHeartbeatAt = long.MinValue;
    private long _lastTickAt = long.MinValue;

    // backup
    private long _verifiedThrough;
    private bool _ackOwed;
    private NodeAddress _ackTo = NodeAddress.None;
    private long _ackEcho;
    private long _ackPrev;
    private long _primaryCommitHeard;
    private long _lastPrimaryContact = long.MinValue;

    // primary
    private long _leaseExpiresAt = long.MinValue;
    private bool _leaseHeld;
    private long _epochStartIndex;
    private PendingChange? _pendingChange;
    private long _nextRequestId;
    private Handover? _handover;

    /// <summary>Starts a server from what its disk held: the highest epoch it had seen and its log.</summary>
    public ServerNode(
        NodeAddress self,
        ulong incarnation,
        ServerOptions options,
        IStateMachine stateMachine,
        IServerEnvironment environment,
        TimeProvider time,
        long recoveredEpoch = 0,
        IEnumerable<LogEntry>? recoveredLog = null,
        ICommitRule? commitRule = null)
    {
        options.Validate();
        Self = self;
        Incarnation = incarnation;
        Options = options;
        _env = environment;
        _time = time;
        _commitRule = commitRule ?? AllInSyncCommitRule.Instance;
        _commitView = new CommitView(this);
        _log = new ReplicatedLog(recoveredLog ?? []);
        State = new ReplicatedState(stateMachine, options.MaxClientSessions);
        _recoveredEpoch = Math.Max(recoveredEpoch, _log.LastEpoch);
        _epoch = _recoveredEpoch;
        _durableIndex = _log.LastIndex;
        _syncRequested = _log.LastIndex;
    }

    public NodeAddress Self { get; }

    /// <summary>Random per process start: tells the monitor and the primary this is a new life.</summary>
    public ulong Incarnation { get; }

    public ServerOptions Options { get; }

    public ServerRole Role => _role;

    public long Epoch => _epoch;

    /// <summary>The primary this server believes in (itself when primary).</summary>
    public NodeAddress Primary => _primary;

    public ClusterConfig Config => _config;

    public long LastIndex => _log.LastIndex;

    public long LastEpoch => _log.LastEpoch;

    public long CommitIndex => _commitIndex;

    public long DurableIndex => _durableIndex;

    public ReplicatedState State { get; }

    public ReplicatedLog Log => _log;

    /// <summary>True while this server is primary and may serve reads and writes.</summary>
    public bool IsServing => _role == ServerRole.Primary && _handover is null && LeaseValid(Now) && _commitIndex >= _epochStartIndex;

    /// <summary>True while this server holds an unexpired lease as primary.</summary>
    public bool HasLease => _role == ServerRole.Primary && LeaseValid(Now);

    /// <summary>As a backup: the highest commit index the primary of this epoch has announced.</summary>
    public long PrimaryCommitIndex => _role == ServerRole.Primary ? _commitIndex : _primaryCommitHeard;

    /// <summary>As a backup: milliseconds since the last frame from the primary (null if none this epoch).</summary>
    public double? MsSincePrimaryContact => _lastPrimaryContact == long.MinValue ? null : (Now - _lastPrimaryContact) * 1000.0 / _time.TimestampFrequency;

    /// <summary>Backups this primary tracks.</summary>
    public IReadOnlyCollection<FollowerProgress> Followers => _followers.Values;

    internal long Now => _time.GetTimestamp();

    internal long TimestampFrequency => _time.TimestampFrequency;

    internal IReadOnlyCollection<NodeAddress> PendingAddMembers => _pendingAdds.Keys;

    internal FollowerProgress? Follower(NodeAddress address) => _followers.GetValueOrDefault(address);

    private int Priority => Options.Priority ?? Self.Port;

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private bool LeaseValid(long now) => now < _leaseExpiresAt;

    // ------------------------------------------------------------------ inputs

    /// <summary>Periodic work: heartbeats, resends, in-sync decisions, lease and handover checks.</summary>
    public void Tick()
    {
        var now = Now;
        var stalled = _lastTickAt != long.MinValue && now - _lastTickAt > Ticks(Options.SelfStallThreshold);
        _lastTickAt = now;
        if (stalled && _role == ServerRole.Primary)
        {
            // This server was not running for a while (CPU starvation, a GC pause, SIGSTOP): its backups' answers
            // may be waiting unread. Do not count the stall against them: restart their lag and resend clocks.
            // (A backup whose connection dropped is still asked out at once; this only delays the slow path.)
            foreach (var f in _followers.Values)
            {
                f.LastProgressAt = Math.Max(f.LastProgressAt, now);
                if (f.WaitingSince != long.MinValue)
                {
                    f.WaitingSince = now;
                }
            }
        }
        if (_lastHeartbeatAt == long.MinValue || now - _lastHeartbeatAt >= Ticks(Options.HeartbeatInterval))
        {
            SendHeartbeat(now);
        }

        if (_role == ServerRole.Primary)
        {
            PrimaryTick(now);
        }
    }

    /// <summary>Sends what the inputs since the last call produced: replication frames, syncs, acks.</summary>
    public void Flush()
    {
        if (_log.LastIndex > _syncRequested)
        {
            _syncRequested = _log.LastIndex;
            _env.SyncLog(_syncRequested, _syncGeneration);
        }

        if (_role == ServerRole.Primary)
        {
            var now = Now;
            foreach (var f in _followers.Values)
            {
                SendEntries(f, now, keepAlive: false);
            }
        }
        else if (_ackOwed && _durableIndex >= _verifiedThrough)
        {
            SendAck();
        }
    }

    /// <summary>The log is durable through <paramref name="throughIndex"/> (for the sync generation given).</summary>
    public void OnLogSynced(long throughIndex, long generation)
    {
        if (generation != _syncGeneration)
        {
            return;
        }

        var synced = Math.Min(throughIndex, _log.LastIndex);
        if (synced <= _durableIndex)
        {
            return;
        }

        _durableIndex = synced;
        if (_role == ServerRole.Primary)
        {
            AdvanceCommit();
        }
        else if (!_ackTo.IsNone)
        {
            _ackOwed = true;
        }
    }

    /// <summary>The transport lost its connection to another server.</summary>
    public void OnPeerConnectionLost(NodeAddress peer)
    {
        if (_role == ServerRole.Primary && _followers.TryGetValue(peer, out var f))
        {
            f.Disconnected = true;
            f.ResetToProbe();
        }
    }

    /// <summary>The monitor's answer to a heartbeat: configuration, and a lease if this is the primary.</summary>
    public void Handle(in HeartbeatAck ack)
    {
        OnConfig(ack.Config);
        GrantLease(ack.Config, ack.EchoSentAt, ack.LeaseMs);
    }

    /// <summary>A configuration pushed by the monitor; naming this server primary, it is a promotion.</summary>
    public void Handle(in ConfigPush push)
    {
        OnConfig(push.Config);
        GrantLease(push.Config, push.LeaseBase, push.LeaseMs);
    }

    /// <summary>The monitor's answer to an in-sync change request.</summary>
    public void Handle(in InSyncChangeResult result)
    {
        OnConfig(result.Config);
        if (_pendingChange is { } pending && pending.RequestId == result.RequestId)
        {
            _pendingChange = null;
            _env.Report(new ServerEvent(ServerEventKind.InSyncChangeAnswered, _epoch, pending.Member, 0, $"{pending.Op} {(result.Accepted ? "accepted" : "refused: " + result.Reason)}"));
        }
    }

    /// <summary>The monitor asks this primary to hand over to a target (or, with no target, calls it off).</summary>
    public void Handle(in StepDown request)
    {
        if (_role != ServerRole.Primary || request.Epoch != _epoch)
        {
            _env.SendToMonitor(new StepDownResult(request.Epoch, Self, request.Target, false, _log.LastIndex, $"not the primary of epoch {request.Epoch}"));
            return;
        }

        if (request.Target.IsNone)
        {
            if (_handover is not null)
            {
                _handover = null;
                _env.Report(new ServerEvent(ServerEventKind.HandoverAbandoned, _epoch, NodeAddress.None, 0, "called off by the monitor"));
            }

            return;
        }

        if (request.Target == Self || !_config.IsMember(request.Target))
        {
            _env.SendToMonitor(new StepDownResult(request.Epoch, Self, request.Target, false, _log.LastIndex, $"{request.Target} is not a backup of this cluster"));
            return;
        }

        if (_handover is null)
        {
            _handover = new Handover(request.Target, Now + Ticks(Options.SwitchoverTimeout));
            _env.Report(new ServerEvent(ServerEventKind.HandoverStarted, _epoch, request.Target, _log.LastIndex, "writes paused until the target holds the whole log"));
        }

        CheckHandover(Now);
    }

    /// <summary>A replication frame from a primary.</summary>
    public void Handle(in Replicate frame)
    {
        if (frame.Epoch < _epoch)
        {
            _env.Report(new ServerEvent(ServerEventKind.StaleFrameRejected, _epoch, frame.From, frame.PrevIndex, $"frame from epoch {frame.Epoch}"));
            _env.SendToServer(frame.From, new ReplicateAck(_epoch, Self, Incarnation, false, 0, 0, _log.LastIndex, frame.PrevIndex, 0, 0, frame.SentAt));
            return;
        }

        if (frame.Epoch > _epoch)
        {
            EnterEpoch(frame.Epoch, frame.From);
        }
        else if (_role == ServerRole.Primary)
        {
            _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _epoch, frame.From, 0, $"two primaries in epoch {_epoch}: frame from {frame.From} refused"));
            return;
        }

        _lastPrimaryContact = Now;
        _primaryCommitHeard = Math.Max(_primaryCommitHeard, frame.CommitIndex);
        if (_primary != frame.From)
        {
            _primary = frame.From;
            _env.Report(new ServerEvent(ServerEventKind.FollowingPrimary, _epoch, frame.From, 0, string.Empty));
        }

        if (frame.PrevIndex > _log.LastIndex)
        {
            Nack(frame, conflictEpoch: 0, conflictIndex: 0);
            return;
        }

        if (frame.PrevIndex > 0 && _log.EpochAt(frame.PrevIndex) != frame.PrevEpoch)
        {
            var conflictEpoch = _log.EpochAt(frame.PrevIndex);
            Nack(frame, conflictEpoch, _log.FirstIndexOfEpoch(conflictEpoch, frame.PrevIndex));
            return;
        }

        var entries = frame.Entries.Span;
        var index = frame.PrevIndex;
        for (var i = 0; i < entries.Length; i++)
        {
            index++;
            if (index <= _log.LastIndex)
            {
                if (_log.EpochAt(index) == entries[i].Epoch)
                {
                    continue;
                }

                if (index <= _commitIndex)
                {
                    _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _epoch, frame.From, index, $"refusing to truncate committed entry {index} (commit index {_commitIndex})"));
                    return;
                }

                Truncate(index);
            }

            var entry = entries[i] with { Index = index };
            _log.Append(entry);
            _env.AppendLog(new ReadOnlySpan<LogEntry>(in entry));
        }

        _verifiedThrough = Math.Max(_verifiedThrough, frame.LastIndex);
        var commit = Math.Min(frame.CommitIndex, _verifiedThrough);
        if (commit > _commitIndex)
        {
            _commitIndex = commit;
            ApplyCommitted();
        }

        _ackOwed = true;
        _ackTo = frame.From;
        _ackEcho = frame.SentAt;
        _ackPrev = frame.PrevIndex;
    }

    /// <summary>A backup's answer to a replication frame.</summary>
    public void Handle(in ReplicateAck ack)
    {
        if (ack.Epoch > _epoch)
        {
            EnterEpoch(ack.Epoch, NodeAddress.None);
            return;
        }

        if (_role != ServerRole.Primary || ack.Epoch < _epoch || !_followers.TryGetValue(ack.From, out var f))
        {
            return;
        }

        var now = Now;
        if (f.Incarnation != ack.Incarnation)
        {
            if (f.Incarnation != 0)
            {
                // A restarted backup: what it acknowledged before may not be on its disk any more.
                f.MatchIndex = 0;
                f.ResetToProbe();
            }

            f.Incarnation = ack.Incarnation;
        }

        f.LastAckAt = now;
        f.Disconnected = false;
        if (ack.EchoSentAt != 0)
        {
            f.LastRoundTrip = now - ack.EchoSentAt;
        }

        if (ack.Success)
        {
            // Progress retires outstanding frames and restarts the resend clock; a stale ack retires nothing.
            if (f.Acknowledge(ack.VerifiedIndex) > 0)
            {
                f.WaitingSince = f.Inflight > 0 ? now : long.MinValue;
            }

            if (ack.MatchIndex > f.MatchIndex)
            {
                f.MatchIndex = Math.Min(ack.MatchIndex, _log.LastIndex);
                f.LastProgressAt = now;
            }

            if (f.Probing)
            {
                f.Probing = false;
                f.ForgetInflight();
                f.WaitingSince = long.MinValue;
                f.NextIndex = Math.Min(Math.Max(ack.VerifiedIndex, f.MatchIndex) + 1, _log.LastIndex + 1);
            }

            AdvanceCommit();
            CheckHandover(now);
            return;
        }

        // The backup's log does not hold our entry at the frame's prevIndex: step back and probe.
        long candidate;
        if (ack.ConflictEpoch == 0)
        {
            candidate = ack.LogEnd + 1;
        }
        else
        {
            var last = _log.LastIndexOfEpoch(ack.ConflictEpoch);
            candidate = last > 0 ? last + 1 : ack.ConflictIndex;
        }

        f.Probing = true;
        f.ForgetInflight();
        f.WaitingSince = long.MinValue;
        f.NextIndex = Math.Clamp(Math.Min(candidate, ack.PrevIndex), 1, _log.LastIndex + 1);
    }

    /// <summary>A client's write or read.</summary>
    public void Handle(ClientRef client, in ClientRequest request)
    {
        if (_role != ServerRole.Primary)
        {
            var hint = _primary == Self ? NodeAddress.None : _primary;
            if (hint.IsNone && _config.Epoch >= _epoch && _config.Primary != Self)
            {
                hint = _config.Primary;
            }

            Answer(client, request, ResponseStatus.NotPrimary, Text($"{Self} is not the primary"), hint);
            return;
        }

        var now = Now;
        if (_handover is not null)
        {
            Answer(client, request, ResponseStatus.Unavailable, Text("switchover in progress: retry shortly"));
            return;
        }

        if (!LeaseValid(now))
        {
            Answer(client, request, ResponseStatus.Unavailable, Text("primary has no lease from the monitor: retry shortly"));
            return;
        }

        if (request.Kind == RequestKind.Read)
        {
            if (_commitIndex < _epochStartIndex)
            {
                Answer(client, request, ResponseStatus.Unavailable, Text("new primary is committing earlier entries: retry shortly"));
                return;
            }

            Answer(client, request, ResponseStatus.Ok, State.Machine.Query(request.Payload.Span));
            return;
        }

        if (_config.InSync.Length < Options.MinInSync)
        {
            Answer(client, request, ResponseStatus.Unavailable, Text($"only {_config.InSync.Length} server(s) in sync; min-in-sync is {Options.MinInSync}"));
            return;
        }

        switch (State.Sessions.Lookup(request.ClientId, request.Seq, out var previous))
        {
            case DedupLookup.Applied:
                Answer(client, request, ResponseStatus.Ok, previous);
                return;
            case DedupLookup.Forgotten:
                Answer(client, request, ResponseStatus.Rejected, Text($"request {request.Seq} was answered before and its result is no longer kept"));
                return;
        }

        if (_inflightWrites.TryGetValue((request.ClientId, request.Seq), out var pendingIndex))
        {
            AddWaiter(pendingIndex, new Waiter(client, request.ClientId, request.Seq));
            return;
        }

        if (State.Machine.Validate(request.Payload.Span) is { } problem)
        {
            Answer(client, request, ResponseStatus.Rejected, Text(problem));
            return;
        }

        var entry = new LogEntry(_log.LastIndex + 1, _epoch, EntryKind.Command, request.ClientId, request.Seq, request.FirstIncomplete, request.Payload);
        _log.Append(entry);
        _env.AppendLog(new ReadOnlySpan<LogEntry>(in entry));
        _inflightWrites[(request.ClientId, request.Seq)] = entry.Index;
        AddWaiter(entry.Index, new Waiter(client, request.ClientId, request.Seq));
    }

    // ------------------------------------------------------------------ configuration and epochs

    private void OnConfig(ClusterConfig config)
    {
        if (config.Epoch < _epoch || config.Version < _config.Version)
        {
            return;
        }

        _config = config;
        if (config.Primary == Self && config.Epoch > _recoveredEpoch && !(_role == ServerRole.Primary && _epoch == config.Epoch))
        {
            BecomePrimary(config.Epoch);
        }
        else if (config.Epoch > _epoch)
        {
            EnterEpoch(config.Epoch, config.Primary);
        }
        else if (_role == ServerRole.Primary && config.Primary != Self)
        {
            _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _epoch, config.Primary, 0, $"monitor names {config.Primary} primary of epoch {config.Epoch}, which this server leads"));
        }
        else if (_role == ServerRole.Backup && _primary.IsNone && config.Epoch == _epoch && config.Primary != Self)
        {
            _primary = config.Primary;
        }

        if (_role == ServerRole.Primary)
        {
            if (_pendingAdds.Count > 0)
            {
                foreach (var (member, expected) in _pendingAdds.ToArray())
                {
                    if (config.Version > expected)
                    {
                        _pendingAdds.Remove(member);
                    }
                }
            }

            if (_pendingChange is { } pending && config.Version > pending.ExpectedVersion)
            {
                _pendingChange = null;
            }

            EnsureFollowers(Now);
            AdvanceCommit();
        }
    }

    private void GrantLease(ClusterConfig config, long baseTimestamp, int leaseMs)
    {
        if (leaseMs <= 0 || baseTimestamp == 0 || _role != ServerRole.Primary || config.Epoch != _epoch || config.Primary != Self)
        {
            return;
        }

        if (_handover is { ReadySent: true })
        {
            return;
        }

        var expires = baseTimestamp + Ticks(TimeSpan.FromMilliseconds(leaseMs * Options.LeaseSafetyFactor));
        if (expires > _leaseExpiresAt)
        {
            _leaseExpiresAt = expires;
        }

        if (!_leaseHeld && LeaseValid(Now))
        {
            _leaseHeld = true;
            _env.Report(new ServerEvent(ServerEventKind.LeaseRenewed, _epoch, NodeAddress.None, 0, string.Empty));
        }
    }

    private void BecomePrimary(long epoch)
    {
        var now = Now;
        if (epoch > _epoch)
        {
            _epoch = epoch;
            _env.SaveEpoch(epoch);
        }

        _role = ServerRole.Primary;
        _primary = Self;
        _verifiedThrough = 0;
        _ackOwed = false;
        _ackTo = NodeAddress.None;
        ForgetPrimaryState();
        _waiters.Clear();
        _extraWaiters.Clear();

        // Writes from earlier epochs still uncommitted here may be retried by their clients: find them by id.
        _inflightWrites.Clear();
        EnsureFollowers(now);
        for (var i = _commitIndex + 1; i <= _log.LastIndex; i++)
        {
            var e = _log[i];
            if (e.Kind == EntryKind.Command)
            {
                _inflightWrites[(e.ClientId, e.RequestSeq)] = i;
            }
        }

        // The epoch's first entry: once it commits, everything before it has too, and reads may be served.
        var start = new LogEntry(_log.LastIndex + 1, epoch, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty);
        _log.Append(start);
        _env.AppendLog(new ReadOnlySpan<LogEntry>(in start));
        _epochStartIndex = start.Index;
        _env.Report(new ServerEvent(ServerEventKind.BecamePrimary, epoch, Self, start.Index, $"log ends at {_log.LastIndex}, commit index {_commitIndex}"));

        // Tell the monitor at once: its answer carries the lease this primary needs to serve.
        SendHeartbeat(now);
    }

    /// <summary>Moves to a newer epoch as a backup (stepping down if this server was primary).</summary>
    private void EnterEpoch(long epoch, NodeAddress primary)
    {
        if (epoch > _epoch)
        {
            _epoch = epoch;
            _env.SaveEpoch(epoch);
        }

        _verifiedThrough = 0;
        _ackOwed = false;
        _ackTo = NodeAddress.None;
        _primaryCommitHeard = 0;
        _lastPrimaryContact = long.MinValue;
        _primary = primary;
        if (_role == ServerRole.Primary)
        {
            _role = ServerRole.Backup;
            ForgetPrimaryState();
            _inflightWrites.Clear();
            FailWaiters(primary, epoch);
            _env.Report(new ServerEvent(ServerEventKind.SteppedDown, epoch, primary, _log.LastIndex, $"epoch {epoch} has {(primary.IsNone ? "another primary" : primary.ToString())}"));
        }
    }

    // ------------------------------------------------------------------ primary

    /// <summary>Drops what only a primary of the current epoch may hold: its lease, handover, in-sync requests and backups.</summary>
    private void ForgetPrimaryState()
    {
        _leaseExpiresAt = long.MinValue;
        _leaseHeld = false;
        _handover = null;
        _pendingChange = null;
        _pendingAdds.Clear();
        _followers.Clear();
    }

    private void EnsureFollowers(long now)
    {
        foreach (var member in _config.Members)
        {
            if (member.Address != Self && !_followers.ContainsKey(member.Address))
            {
                _followers[member.Address] = new FollowerProgress(member.Address, _log.LastIndex + 1, now);
            }
        }
    }

    private void PrimaryTick(long now)
    {
        if (_leaseHeld && !LeaseValid(now))
        {
            _leaseHeld = false;
            _env.Report(new ServerEvent(ServerEventKind.LeaseLapsed, _epoch, NodeAddress.None, 0, "no lease renewal from the monitor: not serving"));
        }

        EnsureFollowers(now);
        var resend = Ticks(Options.ResendTimeout);
        var keepAlive = Ticks(Options.HeartbeatInterval);
        foreach (var f in _followers.Values)
        {
            if (f.MatchIndex >= _log.LastIndex)
            {
                f.LastProgressAt = now;
            }

            // Frames outstanding and no answer for a while: presume them lost, probe and resend.
            if (f.Inflight > 0 && f.WaitingSince != long.MinValue && now - f.WaitingSince > resend)
            {
                f.ResetToProbe();
            }

            SendEntries(f, now, keepAlive: f.LastSentAt == long.MinValue || now - f.LastSentAt >= keepAlive || f.LastCommitSent < _commitIndex);
        }

        DecideInSyncChange(now);
        CheckHandover(now);
        AdvanceCommit();
    }

    private void SendEntries(FollowerProgress f, long now, bool keepAlive)
    {
        if (f.Probing)
        {
            if (f.Inflight > 0)
            {
                return;
            }

            // One frame at a time while probing: a few entries, so a matching backup catches up at once.
            SendFrame(f, now, Math.Min(Options.MaxBatchEntries, 64));
            return;
        }

        var sent = false;
        while (f.Inflight < Options.MaxInflightFrames && f.NextIndex <= _log.LastIndex)
        {
            var count = SendFrame(f, now, Options.MaxBatchEntries);
            f.NextIndex += count;
            sent = true;
        }

        if (!sent && keepAlive && f.Inflight < Options.MaxInflightFrames)
        {
            SendFrame(f, now, 0);
        }
    }

    private int SendFrame(FollowerProgress f, long now, int maxEntries)
    {
        var prev = Math.Min(f.NextIndex - 1, _log.LastIndex);
        var entries = maxEntries == 0 ? [] : _log.Slice(prev + 1, maxEntries, Options.MaxBatchBytes);
        _env.SendToServer(f.Address, new Replicate(_epoch, Self, prev, _log.EpochAt(prev), _commitIndex, now, entries));
        if (f.Inflight == 0 || f.WaitingSince == long.MinValue)
        {
            f.WaitingSince = now;
        }

        f.FrameSent(prev + entries.Length);
        f.LastSentAt = now;
        f.LastCommitSent = _commitIndex;
        return entries.Length;
    }

    private void DecideInSyncChange(long now)
    {
        if (_pendingChange is { } pending)
        {
            if (now - pending.SentAt >= Ticks(Options.InSyncChangeRetry))
            {
                _pendingChange = pending with { SentAt = now };
                _env.SendToMonitor(new InSyncChange(pending.RequestId, Self, _epoch, pending.ExpectedVersion, pending.Op, pending.Member));
            }

            return;
        }

        if (_config.Epoch != _epoch || _config.Primary != Self)
        {
            return;
        }

        var lag = Ticks(Options.ReplicaLagTimeout);
        foreach (var member in _config.InSync)
        {
            if (member == Self || !_followers.TryGetValue(member, out var f))
            {
                continue;
            }

            var behind = f.MatchIndex < _log.LastIndex;
            if (behind && (f.Disconnected || now - f.LastProgressAt > lag))
            {
                RequestInSyncChange(InSyncOp.Remove, member, now);
                return;
            }
        }

        foreach (var member in _config.Members)
        {
            var address = member.Address;
            if (address == Self || _config.IsInSync(address) || !_followers.TryGetValue(address, out var f))
            {
                continue;
            }

            if (_pendingAdds.TryGetValue(address, out var expected) && expected != _config.Version)
            {
                continue;
            }

            var alive = f.LastAckAt != long.MinValue && now - f.LastAckAt <= lag && !f.Disconnected;
            if (alive && f.MatchIndex >= _commitIndex && _log.LastIndex - f.MatchIndex <= Options.CatchUpSlack)
            {
                // From this moment the backup counts for commits, so it holds everything committed when added.
                _pendingAdds[address] = _config.Version;
                RequestInSyncChange(InSyncOp.Add, address, now);
                return;
            }
        }
    }

    private void RequestInSyncChange(InSyncOp op, NodeAddress member, long now)
    {
        var id = ++_nextRequestId;
        _pendingChange = new PendingChange(id, op, member, _config.Version, now);
        _env.Report(new ServerEvent(ServerEventKind.InSyncChangeRequested, _epoch, member, 0, op.ToString()));
        _env.SendToMonitor(new InSyncChange(id, Self, _epoch, _config.Version, op, member));
    }

    private void AdvanceCommit()
    {
        if (_role != ServerRole.Primary)
        {
            return;
        }

        var commit = Math.Min(_commitRule.ComputeCommitIndex(_commitView), _log.LastIndex);
        if (commit > _commitIndex)
        {
            _commitIndex = commit;
            ApplyCommitted();
        }
    }

    private void ApplyCommitted()
    {
        while (State.AppliedIndex < _commitIndex)
        {
            var entry = _log[State.AppliedIndex + 1];
            var result = State.Apply(entry);
            if (_role != ServerRole.Primary || entry.Kind != EntryKind.Command)
            {
                continue;
            }

            _inflightWrites.Remove((entry.ClientId, entry.RequestSeq));
            if (_waiters.Remove(entry.Index, out var waiter))
            {
                ReplyOk(waiter, result);
                if (_extraWaiters.Remove(entry.Index, out var more))
                {
                    foreach (var w in more)
                    {
                        ReplyOk(w, result);
                    }
                }
            }
        }
    }

    private void CheckHandover(long now)
    {
        if (_handover is not { ReadySent: false } handover)
        {
            return;
        }

        var target = _followers.GetValueOrDefault(handover.Target);
        if (target is not null && _commitIndex == _log.LastIndex && target.MatchIndex >= _log.LastIndex && _config.IsInSync(handover.Target))
        {
            // From here on this server never serves in this epoch again: the monitor may promote at once.
            _handover = handover with { ReadySent = true };
            _leaseExpiresAt = long.MinValue;
            _leaseHeld = false;
            _env.Report(new ServerEvent(ServerEventKind.HandoverReady, _epoch, handover.Target, _log.LastIndex, "target holds the whole log"));
            _env.SendToMonitor(new StepDownResult(_epoch, Self, handover.Target, true, _log.LastIndex, string.Empty));
        }
        else if (now > handover.Deadline)
        {
            _handover = null;
            _env.Report(new ServerEvent(ServerEventKind.HandoverAbandoned, _epoch, handover.Target, _log.LastIndex, "target did not catch up in time"));
            _env.SendToMonitor(new StepDownResult(_epoch, Self, handover.Target, false, _log.LastIndex, $"{handover.Target} did not catch up within {Options.SwitchoverTimeout.TotalSeconds:0.#} s"));
        }
    }

    // ------------------------------------------------------------------ backup

    private void Nack(in Replicate frame, long conflictEpoch, long conflictIndex)
    {
        _env.Report(new ServerEvent(ServerEventKind.LogMismatch, _epoch, frame.From, frame.PrevIndex, $"no entry {frame.PrevIndex}@{frame.PrevEpoch}"));
        _env.SendToServer(frame.From, new ReplicateAck(_epoch, Self, Incarnation, false, 0, _verifiedThrough, _log.LastIndex, frame.PrevIndex, conflictEpoch, conflictIndex, frame.SentAt));
    }

    private void SendAck()
    {
        _ackOwed = false;
        var match = Math.Min(_durableIndex, _verifiedThrough);
        _env.SendToServer(_ackTo, new ReplicateAck(_epoch, Self, Incarnation, true, match, _verifiedThrough, _log.LastIndex, _ackPrev, 0, 0, _ackEcho));
    }

    private void Truncate(long fromIndex)
    {
        var dropped = _log.LastIndex - fromIndex + 1;
        _log.TruncateFrom(fromIndex);
        _env.TruncateLog(fromIndex);
        _syncGeneration++;
        _durableIndex = Math.Min(_durableIndex, fromIndex - 1);
        _syncRequested = Math.Min(_syncRequested, fromIndex - 1);
        _verifiedThrough = Math.Min(_verifiedThrough, fromIndex - 1);
        _env.Report(new ServerEvent(ServerEventKind.Truncated, _epoch, _primary, fromIndex, $"dropped {dropped} uncommitted entries that differ from the primary's log"));
    }

    // ------------------------------------------------------------------ helpers

    private void SendHeartbeat(long now)
    {
        _lastHeartbeatAt = now;
        _env.SendToMonitor(new Heartbeat(
            Self,
            Incarnation,
            _role,
            _epoch,
            _config.Version,
            _log.LastIndex,
            _log.LastEpoch,
            _commitIndex,
            now,
            Priority,
            Options.Durable,
            Options.ProcessId,
            Options.HttpPort));
    }

    private void AddWaiter(long index, Waiter waiter)
    {
        if (!_waiters.TryAdd(index, waiter))
        {
            if (!_extraWaiters.TryGetValue(index, out var list))
            {
                _extraWaiters[index] = list = [];
            }

            list.Add(waiter);
        }
    }

    private void FailWaiters(NodeAddress newPrimary, long epoch)
    {
        var message = Text("this server stopped being primary before the write committed: retry at the new primary");
        foreach (var w in _waiters.Values.Concat(_extraWaiters.Values.SelectMany(l => l)))
        {
            _env.Reply(w.Client, new ClientResponse(w.ClientId, w.Seq, ResponseStatus.NotPrimary, epoch, newPrimary, message));
        }

        _waiters.Clear();
        _extraWaiters.Clear();
    }

    private void ReplyOk(Waiter waiter, ReadOnlyMemory<byte> result) =>
        _env.Reply(waiter.Client, new ClientResponse(waiter.ClientId, waiter.Seq, ResponseStatus.Ok, _epoch, Self, result));

    private void Answer(ClientRef client, in ClientRequest request, ResponseStatus status, ReadOnlyMemory<byte> payload, NodeAddress primary = default)
    {
        if (primary == default)
        {
            primary = _role == ServerRole.Primary ? Self : _primary;
        }

        _env.Reply(client, new ClientResponse(request.ClientId, request.Seq, status, _epoch, primary, payload));
    }

    private static byte[] Text(string message) => Encoding.UTF8.GetBytes(message);

    private readonly record struct Waiter(ClientRef Client, ulong ClientId, long Seq);

    private sealed record PendingChange(long RequestId, InSyncOp Op, NodeAddress Member, long ExpectedVersion, long SentAt);

    private sealed record Handover(NodeAddress Target, long Deadline, bool ReadySent = false);
}

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
/// The node keeps what outlives a role: its identity, the epoch, the configuration, the log with its commit
/// and durable indexes, the applied state and the heartbeat clock. What only the role of the current epoch
/// holds lives in a <see cref="PrimaryRole"/> or a <see cref="BackupRole"/>, made fresh at every epoch change
/// and promotion. The rules it keeps (docs/ARCHITECTURE.md, "The safety rules and where they live"):
/// a write is acknowledged only once every in-sync member holds it durably (<see cref="ICommitRule"/>);
/// the in-sync set changes only through the monitor; a backup refuses frames from an older epoch and
/// frames whose previous entry does not match, and never truncates a committed entry; the primary
/// serves only while its lease from the monitor runs; a restarted server never leads the epoch it
/// recovered with. <see cref="CheckInvariants"/> states the local invariants that follow.
/// </remarks>
public sealed partial class ServerNode
{
    private readonly IServerEnvironment _env;
    private readonly TimeProvider _time;
    private readonly ICommitRule _commitRule;
    private readonly ICompactionRule _compactionRule;
    private readonly ISnapshotFormat _snapshotFormat;
    private readonly CommitView _commitView;
    private readonly ReplicatedLog _log;
    private readonly long _recoveredEpoch;

    private long _epoch;
    private EpochRole _role;
    private ClusterConfig _config = ClusterConfig.Initial;
    private long _commitIndex;
    private long _durableIndex;
    private long _syncRequested;
    private long _syncGeneration;
    private long _lastHeartbeatAt = long.MinValue;
    private long _lastTickAt = long.MinValue;
    private long _highestMonitorTerm;

    // The active monitor last heard from (term and process): a change means a new monitor decides from now on.
    private (long Term, ulong Incarnation) _activeMonitor;

    // Snapshots: the newest one stored, the one being written (0: none), and how far the log was compacted.
    private long _snapshotIndex;
    private long _snapshotEpoch;
    private long _snapshotInFlight;
    private long _snapshotInFlightEpoch;

    // The lowest log index the state machine reads in the stored snapshot's state (and in the one in flight): a
    // restart from that snapshot needs it, even if the live state's retention has moved past it since.
    private long _snapshotRetainedFrom = long.MaxValue;
    private long _snapshotInFlightRetainedFrom = long.MaxValue;
    private long _compactedBelow = 1;

    // On the node, not the primary role: request ids stay unique across this process's epochs.
    private long _nextRequestId;

    /// <summary>
    /// Starts a server from what its disk held: the highest epoch it had seen, its newest snapshot (if any) and the
    /// log entries after it (<paramref name="recoveredLog"/>; the whole log without a snapshot). Older entries are
    /// read from <paramref name="archive"/> when needed.
    /// </summary>
    public ServerNode(
        NodeAddress self,
        ulong incarnation,
        ServerOptions options,
        IStateMachine stateMachine,
        IServerEnvironment environment,
        TimeProvider time,
        long recoveredEpoch = 0,
        IEnumerable<LogEntry>? recoveredLog = null,
        ICommitRule? commitRule = null,
        ILogArchive? archive = null,
        ServerSnapshot? snapshot = null,
        ICompactionRule? compactionRule = null,
        ISnapshotFormat? snapshotFormat = null,
        IReadRule? readRule = null,
        IDeduplicationRule? deduplicationRule = null,
        IReadRule? offLoopReadRule = null)
    {
        options.Validate();
        Self = self;
        Incarnation = incarnation;
        Options = options;
        _env = environment;
        _time = time;
        _commitRule = commitRule ?? AllInSyncCommitRule.Instance;
        _compactionRule = compactionRule ?? SafeCompactionRule.Instance;
        _snapshotFormat = snapshotFormat ?? WholeStateSnapshotFormat.Instance;
        _commitView = new CommitView(this);
        // The log continues after the snapshot, or lower for one installed from the primary (see ServerSnapshot.LogResumesAfter):
        // a restart there whose log does not reach the snapshot yet is backfilling again, from where its log ends.
        if (snapshot is { } s && (s.LogResumesAfter < 0 || s.LogResumesAfter > s.Index))
        {
            throw new ArgumentOutOfRangeException(nameof(snapshot), s.LogResumesAfter, $"the log of snapshot {s.Index} must resume at or before it");
        }

        var baseIndex = snapshot?.LogResumesAfter ?? 0;
        _log = new ReplicatedLog(baseIndex, snapshot?.LogResumesAfterEpoch ?? 0, (recoveredLog ?? []).Where(e => e.Index > baseIndex), archive, options.LogWindowEntries, options.LogWindowBytes);
        (stateMachine as ILogBackedStateMachine)?.AttachLog(_log);
        ReadRule = readRule ?? LeasedPrimaryReadRule.Instance;
        Reads = new OffLoopReads(stateMachine as IConcurrentQueries, offLoopReadRule ?? ReadRule, time);
        State = new ReplicatedState(stateMachine, options.MaxClientSessions, options.SessionIdleTimeout, deduplicationRule);
        if (snapshot is { } restored)
        {
            // Everything through the snapshot was committed (a snapshot is only taken of applied entries).
            State.Restore(restored.State.Span);
            if (State.AppliedIndex != restored.Index)
            {
                throw new InvalidOperationException($"snapshot at {restored.Index} holds a state applied through {State.AppliedIndex}");
            }

            _commitIndex = restored.Index;
            _snapshotIndex = restored.Index;
            _snapshotEpoch = restored.Epoch;
            _compactedBelow = _log.FirstIndex;
            _snapshotRetainedFrom = (stateMachine as ILogBackedStateMachine)?.RetainedFromIndex ?? long.MaxValue;
        }

        _recoveredEpoch = Math.Max(recoveredEpoch, _log.LastEpoch);
        _epoch = _recoveredEpoch;
        _durableIndex = _log.LastIndex;
        _syncRequested = _log.LastIndex;
        _role = new BackupRole(this, NodeAddress.None);
    }

    public NodeAddress Self { get; }

    /// <summary>Random per process start: tells the monitor and the primary this is a new life.</summary>
    public ulong Incarnation { get; }

    public ServerOptions Options { get; }

    public ServerRole Role => _role.Kind;

    public long Epoch => _epoch;

    /// <summary>The primary this server believes in (itself when primary).</summary>
    public NodeAddress Primary => _role is BackupRole backup ? backup.Primary : Self;

    public ClusterConfig Config => _config;

    public long LastIndex => _log.LastIndex;

    public long LastEpoch => _log.LastEpoch;

    public long CommitIndex => _commitIndex;

    public long DurableIndex => _durableIndex;

    public ReplicatedState State { get; }

    public ReplicatedLog Log => _log;

    /// <summary>The highest monitor term seen in a heartbeat answer: lease grants from a lower term are ignored.</summary>
    public long HighestMonitorTerm => _highestMonitorTerm;

    /// <summary>
    /// The incarnation of the active monitor last heard from (0 before any): the host sends what is not a heartbeat
    /// to the monitor connection whose last ack carried it (see <see cref="IServerEnvironment.SendToMonitor"/>).
    /// </summary>
    public ulong ActiveMonitorIncarnation => _activeMonitor.Incarnation;

    /// <summary>The last entry the newest stored snapshot covers (0: none).</summary>
    public long SnapshotIndex => _snapshotIndex;

    /// <summary>The epoch of the entry at <see cref="SnapshotIndex"/>.</summary>
    public long SnapshotEpoch => _snapshotEpoch;

    /// <summary>The lowest log index the state in the stored snapshot still reads (<see cref="long.MaxValue"/>: none).</summary>
    internal long SnapshotRetainedFrom => _snapshotRetainedFrom;

    /// <summary>
    /// True after installing a snapshot from the primary while the log does not yet reach it: the entries the snapshot's
    /// state still reads are arriving. The server must not lead meanwhile (its log is not whole).
    /// </summary>
    public bool Backfilling => _log.LastIndex < _snapshotIndex;

    /// <summary>True while this server is primary and may serve reads and writes.</summary>
    public bool IsServing => _role is PrimaryRole primary && primary.IsServing;

    /// <summary>True while this server holds an unexpired lease as primary.</summary>
    public bool HasLease => _role is PrimaryRole primary && primary.LeaseValid(Now);

    /// <summary>As a backup: the highest commit index the primary of this epoch has announced.</summary>
    public long PrimaryCommitIndex => _role is BackupRole backup ? backup.PrimaryCommitHeard : _commitIndex;

    /// <summary>As a backup: milliseconds since the last frame from the primary (null if none this epoch, and on a primary).</summary>
    public double? MsSincePrimaryContact =>
        _role is BackupRole { LastPrimaryContact: var at } && at != long.MinValue ? (Now - at) * 1000.0 / _time.TimestampFrequency : null;

    /// <summary>Backups this primary tracks (none on a backup).</summary>
    public IReadOnlyCollection<FollowerProgress> Followers => _role is PrimaryRole primary ? primary.Followers : [];

    /// <summary>Who may answer a read (<see cref="LeasedPrimaryReadRule"/> unless a test swaps in a broken one).</summary>
    internal IReadRule ReadRule { get; }

    /// <summary>Linearizable reads answered on the caller's thread, from what this loop publishes at the end of each <see cref="Flush"/>.</summary>
    public OffLoopReads Reads { get; }

    internal long Now => _time.GetTimestamp();

    internal long TimestampFrequency => _time.TimestampFrequency;

    internal IServerEnvironment Env => _env;

    internal IReadOnlyCollection<NodeAddress> PendingAddMembers => _role is PrimaryRole primary ? primary.PendingAddMembers : [];

    internal FollowerProgress? Follower(NodeAddress address) => (_role as PrimaryRole)?.Follower(address);

    private int Priority => Options.Priority ?? Self.Port;

    internal long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    /// <summary>
    /// The log time for an entry this server (as primary) creates now: its wall clock in Unix ms, but never below
    /// the highest time already in its log or applied state, so log time never decreases along the log, also
    /// across a failover to a server whose clock is behind.
    /// </summary>
    internal long NextLogTimeMs() =>
        Math.Max(_time.GetUtcNow().ToUnixTimeMilliseconds(), Math.Max(_log.HighestLogTimeMs, State.LastLogTimeMs));

    // ------------------------------------------------------------------ inputs

    /// <summary>Periodic work: heartbeats, resends, in-sync decisions, lease and handover checks.</summary>
    public void Tick()
    {
        var now = Now;
        var stalled = _lastTickAt != long.MinValue && now - _lastTickAt > Ticks(Options.SelfStallThreshold);
        _lastTickAt = now;
        if (stalled && _role is PrimaryRole stalledPrimary)
        {
            stalledPrimary.ForgiveStall(now);
        }

        if (_lastHeartbeatAt == long.MinValue || now - _lastHeartbeatAt >= Ticks(Options.HeartbeatInterval))
        {
            SendHeartbeat(now);
        }

        if (_role is PrimaryRole primary)
        {
            primary.Tick(now);
        }

        AssertInvariants();
    }

    /// <summary>Sends what the inputs since the last call produced: replication frames, syncs, acks.</summary>
    public void Flush()
    {
        // A backup streaming a backlog asks for an fsync every CatchUpSyncBytes, not after every frame.
        if (_log.LastIndex > _syncRequested && (_role is not BackupRole backlog || backlog.SyncDue))
        {
            _syncRequested = _log.LastIndex;
            _env.SyncLog(_syncRequested, _syncGeneration);
            (_role as BackupRole)?.SyncRequested();
        }

        switch (_role)
        {
            case PrimaryRole primary:
                primary.Flush(Now);
                break;
            case BackupRole backup:
                backup.Flush();
                break;
        }

        // Last: what the burst applied and renewed is in place before reads off the loop rely on it.
        if (_role is PrimaryRole serving)
        {
            serving.PublishReads(Reads);
        }
        else
        {
            Reads.Publish(Self, _epoch, primary: false, handingOver: false, long.MinValue, epochCommitted: false);
        }

        AssertInvariants();
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
        switch (_role)
        {
            case PrimaryRole primary:
                primary.AdvanceCommit();
                break;
            case BackupRole backup:
                backup.OnDurable();
                break;
        }

        // A snapshot put off because the entries it covers were not yet durable here may be taken now.
        MaybeSnapshot();

        _log.Evict(Math.Min(_commitIndex, _durableIndex));

        AssertInvariants();
    }

    /// <summary>The snapshot through <paramref name="index"/> asked for with <see cref="IServerEnvironment.SaveSnapshot"/> is durable.</summary>
    public void OnSnapshotSaved(long index)
    {
        if (index != _snapshotInFlight)
        {
            return;
        }

        _snapshotInFlight = 0;
        if (index > _snapshotIndex)
        {
            _snapshotIndex = index;
            _snapshotEpoch = _snapshotInFlightEpoch;
            _snapshotRetainedFrom = _snapshotInFlightRetainedFrom;
            _log.SetBase(_snapshotIndex, _snapshotEpoch);
        }

        Compact();
        MaybeSnapshot();
        AssertInvariants();
    }

    /// <summary>The transport lost its connection to another server.</summary>
    public void OnPeerConnectionLost(NodeAddress peer)
    {
        if (_role is PrimaryRole primary)
        {
            primary.OnPeerConnectionLost(peer);
        }

        AssertInvariants();
    }

    /// <summary>
    /// A monitor's answer to a heartbeat (every monitor of the group answers): its configuration, adopted by version
    /// from any monitor, and a lease if this is the primary. A lease is taken only from the active monitor
    /// (<see cref="HeartbeatAck.FromActive"/>) of a term no lower than the highest seen: a deposed monitor that has not
    /// heard of its successor yet grants nothing this server acts on.
    /// </summary>
    public void Handle(in HeartbeatAck ack)
    {
        _highestMonitorTerm = Math.Max(_highestMonitorTerm, ack.MonitorTerm);
        OnConfig(ack.Config);
        if (ack.FromActive && ack.MonitorTerm >= _activeMonitor.Term && (ack.MonitorTerm, ack.MonitorIncarnation) != _activeMonitor)
        {
            var changed = _activeMonitor != default;
            _activeMonitor = (ack.MonitorTerm, ack.MonitorIncarnation);
            if (changed)
            {
                (_role as PrimaryRole)?.OnNewActiveMonitor();
            }
        }

        if (ack.FromActive && ack.LeaseMs > 0 && ack.MonitorTerm >= _highestMonitorTerm)
        {
            (_role as PrimaryRole)?.GrantLease(ack.Config, ack.EchoSentAt, ack.LeaseMs);
        }

        AssertInvariants();
    }

    /// <summary>A configuration pushed by the monitor; naming this server primary, it is a promotion.</summary>
    public void Handle(in ConfigPush push)
    {
        OnConfig(push.Config);
        (_role as PrimaryRole)?.GrantLease(push.Config, push.LeaseBase, push.LeaseMs);
        AssertInvariants();
    }

    /// <summary>The monitor's answer to an in-sync change request.</summary>
    public void Handle(in InSyncChangeResult result)
    {
        OnConfig(result.Config);
        (_role as PrimaryRole)?.OnInSyncChangeResult(result);
        AssertInvariants();
    }

    /// <summary>The monitor asks this primary to hand over to a target (or, with no target, calls it off).</summary>
    public void Handle(in StepDown request)
    {
        if (_role is PrimaryRole primary && request.Epoch == _epoch)
        {
            primary.OnStepDown(request);
        }
        else
        {
            _env.SendToMonitor(new StepDownResult(request.Epoch, Self, request.Target, false, _log.LastIndex, $"not the primary of epoch {request.Epoch}"));
        }

        AssertInvariants();
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

        // Off the wire a frame is always decoded; one handed over in process (tests) may still carry encoded entries.
        FollowerFor(frame.Epoch, frame.From, "frame")?.Accept(frame.Encoded.Count == 0 ? frame : frame.Decoded());
        AssertInvariants();
    }

    /// <summary>
    /// The backup role that takes a message from the primary of <paramref name="epoch"/> (not older than this server's;
    /// the caller answers an older one), entering that epoch first when it is newer. Null, reported as a safety violation,
    /// when this server is itself the primary of that epoch.
    /// </summary>
    private BackupRole? FollowerFor(long epoch, NodeAddress from, string what)
    {
        if (epoch > _epoch)
        {
            EnterEpoch(epoch, from);
        }

        if (_role is BackupRole backup)
        {
            return backup;
        }

        _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _epoch, from, 0, $"two primaries in epoch {_epoch}: {what} from {from} refused"));
        return null;
    }

    /// <summary>A chunk of the primary's snapshot, for a backup that needs entries the primary no longer holds.</summary>
    public void Handle(in SnapshotChunk chunk)
    {
        if (chunk.Epoch < _epoch)
        {
            // An old primary: the newer epoch in the answer tells it that it has been replaced.
            _env.Report(new ServerEvent(ServerEventKind.StaleFrameRejected, _epoch, chunk.From, chunk.SnapshotIndex, $"snapshot chunk from epoch {chunk.Epoch}"));
            _env.SendToServer(chunk.From, new SnapshotAck(_epoch, Self, Incarnation, chunk.SnapshotIndex, 0, false, _log.LastIndex));
            return;
        }

        FollowerFor(chunk.Epoch, chunk.From, "snapshot chunk")?.Accept(chunk);
        AssertInvariants();
    }

    /// <summary>A backup's answer to a snapshot chunk.</summary>
    public void Handle(in SnapshotAck ack)
    {
        if (ack.Epoch > _epoch)
        {
            EnterEpoch(ack.Epoch, NodeAddress.None);
        }
        else if (_role is PrimaryRole primary && ack.Epoch == _epoch)
        {
            primary.OnSnapshotAck(ack);
        }

        AssertInvariants();
    }

    /// <summary>A backup's answer to a replication frame.</summary>
    public void Handle(in ReplicateAck ack)
    {
        if (ack.Epoch > _epoch)
        {
            EnterEpoch(ack.Epoch, NodeAddress.None);
        }
        else if (_role is PrimaryRole primary && ack.Epoch == _epoch)
        {
            primary.OnAck(ack);
        }

        AssertInvariants();
    }

    /// <summary>A client's write or read.</summary>
    public void Handle(ClientRef client, in ClientRequest request)
    {
        switch (_role)
        {
            case PrimaryRole primary:
                primary.OnClientRequest(client, request);
                break;
            case BackupRole backup:
                backup.OnClientRequest(client, request);
                break;
        }

        AssertInvariants();
    }

    // ------------------------------------------------------------------ replies and heartbeats

    internal void Answer(ClientRef client, in ClientRequest request, ResponseStatus status, ReadOnlyMemory<byte> payload, NodeAddress primary = default)
    {
        if (primary == default)
        {
            primary = Primary;
        }

        _env.Reply(client, new ClientResponse(request.ClientId, request.Seq, status, _epoch, primary, payload));
    }

    internal static byte[] Text(string message) => Encoding.UTF8.GetBytes(message);

    private void SendHeartbeat(long now)
    {
        _lastHeartbeatAt = now;
        _env.SendToMonitor(new Heartbeat(
            Self,
            Incarnation,
            Role,
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
}

using System.Buffers;
using System.Diagnostics;
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
public sealed class ServerNode
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
        IDeduplicationRule? deduplicationRule = null)
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

        FollowerFor(frame.Epoch, frame.From, "frame")?.Accept(frame);
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

    // ------------------------------------------------------------------ invariants

    /// <summary>
    /// Checks the local invariants of this server (and of its current role) and throws
    /// <see cref="InvariantViolationException"/>, naming the rule and the values, when one is broken.
    /// They hold after every input; debug builds check them at the end of each, the simulator after each step.
    /// </summary>
    public void CheckInvariants()
    {
        var last = _log.LastIndex;

        // Entries commit only once in the log, and a committed entry is never truncated. The one exception is a
        // snapshot installed from the primary whose log does not reach it yet: committed exactly through the snapshot.
        if (_commitIndex < 0 || (_commitIndex > last && !(Backfilling && _commitIndex == _snapshotIndex)))
        {
            throw new InvariantViolationException("0 <= commit index <= last log index", $"commit index {_commitIndex}, last index {last}, snapshot {_snapshotIndex}");
        }

        // A server whose log does not reach its snapshot yet never leads: it would append after a hole.
        if (Backfilling && _role is PrimaryRole)
        {
            throw new InvariantViolationException("a primary's log reaches its snapshot", $"last index {last}, snapshot {_snapshotIndex}");
        }

        // Every committed entry is applied as soon as it commits.
        if (State.AppliedIndex != _commitIndex)
        {
            throw new InvariantViolationException("applied index == commit index", $"applied index {State.AppliedIndex}, commit index {_commitIndex}");
        }

        // A sync reports at most what it was asked for, and a truncation pulls both back below the cut.
        if (_durableIndex > _syncRequested || _syncRequested > last)
        {
            throw new InvariantViolationException("durable index <= sync requested <= last log index", $"durable {_durableIndex}, requested {_syncRequested}, last index {last}");
        }

        // Entries come from this epoch's primary (or earlier ones), and the epoch never goes back.
        if (_epoch < _log.LastEpoch || _epoch < _recoveredEpoch || _config.Epoch > _epoch)
        {
            throw new InvariantViolationException("log's last epoch, recovered epoch, configuration epoch <= epoch", $"epoch {_epoch}, log's last epoch {_log.LastEpoch}, recovered {_recoveredEpoch}, config epoch {_config.Epoch}");
        }

        // A restarted server never leads the epoch it recovered with.
        if (_role is PrimaryRole && _epoch <= _recoveredEpoch)
        {
            throw new InvariantViolationException("a primary's epoch > the epoch it recovered with", $"epoch {_epoch}, recovered {_recoveredEpoch}");
        }

        // Nothing above a stored snapshot is compacted, nor anything not yet committed.
        if (_compactedBelow > _snapshotIndex + 1 || _compactedBelow > _commitIndex + 1)
        {
            throw new InvariantViolationException("compacted below <= snapshot index + 1 and <= commit index + 1", $"compacted below {_compactedBelow}, snapshot {_snapshotIndex}, commit index {_commitIndex}");
        }

        // The log holds every entry the state machine reads back (the message store's retained messages): compaction
        // stops at that floor, a snapshot install resumes the log just below it, and so must a restart.
        if (State.Machine is ILogBackedStateMachine backed && backed.RetainedFromIndex < _log.FirstIndex)
        {
            throw new InvariantViolationException("log's first index <= the first index the state machine reads", $"log starts at {_log.FirstIndex}, the state machine reads from {backed.RetainedFromIndex}, snapshot {_snapshotIndex}");
        }

        _role.CheckInvariants();
    }

    [Conditional("DEBUG")]
    private void AssertInvariants() => CheckInvariants();

    // ------------------------------------------------------------------ configuration and epochs

    private void OnConfig(ClusterConfig config)
    {
        if (config.Epoch < _epoch || config.Version < _config.Version)
        {
            return;
        }

        _config = config;
        if (config.Primary == Self && Backfilling && !(_role is PrimaryRole && _epoch == config.Epoch))
        {
            // The monitor promotes only in-sync members, and a backfilling backup is not one: never expected.
            _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, config.Epoch, Self, _log.LastIndex, $"named primary while the log (to {_log.LastIndex}) does not reach the installed snapshot {_snapshotIndex}: refused"));
            if (config.Epoch > _epoch)
            {
                EnterEpoch(config.Epoch, NodeAddress.None);
            }
        }
        else if (config.Primary == Self && config.Epoch > _recoveredEpoch && !(_role is PrimaryRole && _epoch == config.Epoch))
        {
            BecomePrimary(config.Epoch);
        }
        else if (config.Epoch > _epoch)
        {
            EnterEpoch(config.Epoch, config.Primary);
        }
        else if (_role is PrimaryRole && config.Primary != Self)
        {
            _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _epoch, config.Primary, 0, $"monitor names {config.Primary} primary of epoch {config.Epoch}, which this server leads"));
        }
        else if (_role is BackupRole { Primary.IsNone: true } backup && config.Epoch == _epoch && config.Primary != Self)
        {
            backup.LearnPrimary(config.Primary);
        }

        (_role as PrimaryRole)?.OnConfig(config);
    }

    private void BecomePrimary(long epoch)
    {
        var now = Now;
        if (epoch > _epoch)
        {
            _epoch = epoch;
            _env.SaveEpoch(epoch);
        }

        // Whatever role this server played before (a backup, or the primary of an earlier epoch) is dropped whole.
        var primary = new PrimaryRole(this, now);
        _role = primary;

        // The epoch's first entry: once it commits, everything before it has too, and reads may be served.
        var start = new LogEntry(primary.EpochStartIndex, epoch, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty, NextLogTimeMs());
        _log.Append(start);
        _env.AppendLog(new ReadOnlySpan<LogEntry>(in start));
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

        var previous = _role;
        _role = new BackupRole(this, primary);
        if (previous is PrimaryRole steppedDown)
        {
            steppedDown.FailWaiters(primary, epoch);
            _env.Report(new ServerEvent(ServerEventKind.SteppedDown, epoch, primary, _log.LastIndex, $"epoch {epoch} has {(primary.IsNone ? "another primary" : primary.ToString())}"));
        }
    }

    // ------------------------------------------------------------------ the log, for the roles

    /// <summary>The next in-sync change request id.</summary>
    internal long NextInSyncRequestId() => ++_nextRequestId;

    /// <summary>How far the commit rule says the primary's log is committed.</summary>
    internal long ComputeCommitIndex() => _commitRule.ComputeCommitIndex(_commitView);

    /// <summary>Commits through <paramref name="index"/> (above the current commit index) and applies what that commits.</summary>
    internal void CommitThrough(long index)
    {
        _commitIndex = index;
        while (State.AppliedIndex < _commitIndex)
        {
            var entry = _log[State.AppliedIndex + 1];
            var result = State.Apply(entry, out var outcome);
            if (entry.Kind == EntryKind.Command && _role is PrimaryRole primary)
            {
                primary.OnApplied(entry, result, outcome == SessionWrite.Expired);
            }
        }

        _log.Evict(Math.Min(_commitIndex, _durableIndex));
        MaybeSnapshot();
    }

    /// <summary>Asks for a snapshot once enough entries were applied since the last one (one at a time).</summary>
    private void MaybeSnapshot()
    {
        var every = Options.SnapshotEveryEntries;
        var applied = State.AppliedIndex;
        if (every == 0 || _snapshotInFlight != 0 || applied - _snapshotIndex < every)
        {
            return;
        }

        if (applied > _durableIndex)
        {
            // A backup applies what the primary committed before its own disk has it. A snapshot stored past this
            // server's durable log would, after a crash, start a log that ends below it: the entries the message
            // store's state still reads from there would be gone. OnLogSynced asks again.
            return;
        }

        var buffer = new ArrayBufferWriter<byte>();
        _snapshotFormat.Write(State, buffer);
        _snapshotInFlight = applied;
        _snapshotInFlightEpoch = _log.EpochAt(applied);
        _snapshotInFlightRetainedFrom = (State.Machine as ILogBackedStateMachine)?.RetainedFromIndex ?? long.MaxValue;
        _env.Report(new ServerEvent(ServerEventKind.SnapshotTaken, _epoch, NodeAddress.None, applied, $"{buffer.WrittenCount} bytes"));
        _env.SaveSnapshot(applied, _snapshotInFlightEpoch, buffer.WrittenMemory);
    }

    /// <summary>
    /// The log may lose what is under the stored snapshot, except what the state machine still reads (retention's
    /// floor) and what an in-sync backup still needs: below min(snapshot + 1, retention floor, backups' match + 1).
    /// The floor is the snapshot's, not the live state's: a restart from the snapshot reads from there.
    /// </summary>
    private void Compact()
    {
        var retainedFrom = _snapshotRetainedFrom;
        if (State.Machine is ILogBackedStateMachine backed)
        {
            retainedFrom = Math.Min(retainedFrom, backed.RetainedFromIndex);
        }

        var inSyncNeed = _role is PrimaryRole primary ? primary.LowestInSyncNeed() : long.MaxValue;
        // One entry under the limit stays: a snapshot transfer resumes a backup's log right after the first entry the
        // machine still reads, and the frame that follows is built on that entry, so its epoch must still be known here.
        // Without it the log could start one above, the transfer would resume one entry too late, and the backup would
        // be sent the snapshot again and again.
        var below = _compactionRule.CompactBelow(new CompactionLimits(_snapshotIndex, retainedFrom, inSyncNeed, _commitIndex, _log.LastIndex)) - 1;
        if (below > _compactedBelow)
        {
            _compactedBelow = below;
            _env.CompactLog(below);
        }
    }

    /// <summary>The log was compacted below this index (entries under it may be gone from disk).</summary>
    public long CompactedBelow => _compactedBelow;

    /// <summary>
    /// Replaces the applied state by a snapshot through <paramref name="index"/> received from the primary, whose log
    /// continues after <paramref name="resumeAfter"/> (of <paramref name="resumeEpoch"/>): the whole log here is dropped
    /// (everything committed in it is also in the snapshot; what is not committed may be dropped). Returns false, changing
    /// nothing, when this server has already applied that far.
    /// </summary>
    internal bool InstallSnapshot(long index, long epoch, long resumeAfter, long resumeEpoch, ReadOnlyMemory<byte> state)
    {
        if (index <= _commitIndex || resumeAfter > index)
        {
            return false;
        }

        State.Restore(state.Span);
        if (State.AppliedIndex != index)
        {
            throw new InvalidOperationException($"snapshot at {index} holds a state applied through {State.AppliedIndex}");
        }

        _log.ResetTo(resumeAfter, resumeEpoch);
        _env.ResetLog(resumeAfter, resumeEpoch);
        _syncGeneration++;
        _durableIndex = resumeAfter;
        _syncRequested = resumeAfter;
        _commitIndex = index;
        _snapshotIndex = index;
        _snapshotEpoch = epoch;
        _snapshotRetainedFrom = (State.Machine as ILogBackedStateMachine)?.RetainedFromIndex ?? long.MaxValue;
        _compactedBelow = resumeAfter + 1;
        _env.Report(new ServerEvent(ServerEventKind.SnapshotInstalled, _epoch, Primary, index, $"state through {index}; the log continues after {resumeAfter}"));
        return true;
    }

    /// <summary>Drops the log from <paramref name="fromIndex"/> on (never a committed entry); syncs in flight no longer count.</summary>
    internal void TruncateLogFrom(long fromIndex)
    {
        _log.TruncateFrom(fromIndex);
        _env.TruncateLog(fromIndex);
        _syncGeneration++;
        _durableIndex = Math.Min(_durableIndex, fromIndex - 1);
        _syncRequested = Math.Min(_syncRequested, fromIndex - 1);
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

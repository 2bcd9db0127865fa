using System.Text;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Core;
using Understudy.Core.Client;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>A server process: the real <see cref="ServerNode"/> over a simulated disk.</summary>
internal sealed class SimServer : SimNode, IServerEnvironment
{
    private readonly SimCluster _cluster;
    private readonly NodeClock _clock;
    private long _checkedCommit;
    private SimMonitor? _activeMonitor;

    public SimServer(SimCluster cluster, string name, NodeAddress address)
        : base(cluster.World, name)
    {
        _cluster = cluster;
        Address = address;
        var offset = cluster.World.Random.NextInt64(1_000_000, 1_000_000_000);

        // Skewed wall clocks (derived from the offset, so other seeds draw the same random numbers as before): a new
        // primary behind its predecessor must not stamp log time backwards, one ahead makes sessions expire at once.
        var wallOffset = cluster.World.Options.ShortSessions ? (offset % 4_000_000) - 2_000_000 : 0;
        _clock = new NodeClock(cluster.World, offset, (cluster.World.Random.NextDouble() - 0.5) * 0.01, wallOffset);
        Disk = new SimDisk { SnapshotOnRestart = cluster.World.Options.SnapshotOnRestart };
    }

    public NodeAddress Address { get; }

    public SimDisk Disk { get; }

    public ServerNode? Node { get; private set; }

    public void Start()
    {
        Life++;
        Up = true;
        _checkedCommit = 0;
        _activeMonitor = null;
        var (epoch, snapshot, entries) = Disk.Recover();
        Node = new ServerNode(
            Address,
            World.Random.NextUInt64(),
            World.Options.ServerForSeed,
            World.Options.StateMachine == SimulatedStateMachine.KeyValue ? new KeyValueStore() : new MessageStore(World.Options.RetainMessages is { } keep ? new MessageRetention { Messages = keep } : MessageRetention.KeepEverything),
            this,
            _clock,
            epoch,
            entries,
            World.Options.CommitRule?.Invoke(),
            archive: Disk,
            snapshot: snapshot,
            compactionRule: World.Options.CompactionRule?.Invoke(),
            snapshotFormat: World.Options.SnapshotFormat?.Invoke(),
            readRule: World.Options.ReadRule?.Invoke(),
            deduplicationRule: World.Options.DeduplicationRule?.Invoke());
        if (snapshot is not null)
        {
            World.CountFault("started-from-snapshot");
        }

        World.Log(Name, $"started: recovered epoch {epoch}, snapshot at {snapshot?.Index ?? 0}, {entries.Count} entries after it");
        ScheduleTicks(() => Node!.Tick());
    }

    public void Crash()
    {
        Up = false;
        Life++;
        Node = null;
        ClearDeferred();
        var lost = Disk.Crash(World.Random);
        if (lost > 0)
        {
            World.CountFault("disk-unsynced-lost");
        }

        World.Log(Name, $"CRASHED ({lost} unsynced disk writes lost)");
    }

    /// <summary>The host's dispatch: members' messages only from members, then the shared map to the node's input.</summary>
    protected override void Take(SimNode from, IMessage message)
    {
        var sender = ServerInbox.SenderOf(message.Type);
        var client = from as SimClient;
        if (sender == ServerSender.None || (sender == ServerSender.Member) != (client is null))
        {
            Reject(from, $"a server does not take {message.Type} from {from.Name}");
            return;
        }

        if (message is HeartbeatAck { FromActive: true } && from is SimMonitor monitor)
        {
            _activeMonitor = monitor;
        }

        ServerInbox.Deliver(Node!, client?.Ref ?? default, message);
    }

    public void OnPeerConnectionLost(NodeAddress peer) => Node!.OnPeerConnectionLost(peer);

    protected override void AfterInput()
    {
        Node!.Flush();
        _cluster.CheckOnePrimary();
        try
        {
            Node.CheckInvariants();
        }
        catch (InvariantViolationException e)
        {
            World.Violations.Add(new Violation(ViolationKind.Invariant, $"{Name} at {World.Now}us: {e.Message}"));
        }

        _checkedCommit = _cluster.CheckCommitted(this, _checkedCommit);
    }

    // ------------------------------------------------------------------ IServerEnvironment

    /// <summary>
    /// As the host does: a heartbeat goes to every monitor of the group (each on its own connection); anything else
    /// (in-sync changes, step-down results) to the monitor whose last ack said it is active.
    /// </summary>
    public void SendToMonitor<T>(in T message)
        where T : IMessage
    {
        if (message is Heartbeat)
        {
            foreach (var monitor in _cluster.Monitors)
            {
                World.Send(this, monitor, message);
            }

            return;
        }

        World.Send(this, _activeMonitor ?? _cluster.Monitors[0], message);
    }

    public void SendToServer<T>(NodeAddress to, in T message)
        where T : IMessage => World.Send(this, _cluster.Server(to), message);

    public void Reply(ClientRef client, in ClientResponse response)
    {
        if (response.Status == ResponseStatus.SessionExpired)
        {
            World.CountFault("session-expired-refusal");
        }

        World.Send(this, _cluster.Client(client), response);
    }

    public void AppendLog(ReadOnlySpan<LogEntry> entries) => Disk.Append(entries);

    public void TruncateLog(long fromIndex) => Disk.Truncate(fromIndex);

    public void SyncLog(long throughIndex, long generation)
    {
        var point = Disk.SyncPoint;
        var life = Life;
        var done = Math.Max(World.Now + 50 + World.Random.Next(1500), Disk.LastSyncDone);
        Disk.LastSyncDone = done;
        World.At(done, () =>
        {
            if (!Up || life != Life)
            {
                return;
            }

            Disk.MakeDurable(point);
            Deliver(life, () => Node!.OnLogSynced(throughIndex, generation));
        });
    }

    public void SaveEpoch(long epoch) => Disk.SaveEpoch(epoch);

    public void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot)
    {
        // Written in the background (temp file, fsync, rename): stored whole when done, lost if the server dies first.
        var life = Life;
        World.At(World.Now + 100 + World.Random.Next(3000), () =>
        {
            if (!Up || life != Life)
            {
                return;
            }

            Disk.StoreSnapshot(new ServerSnapshot(index, epoch, snapshot));
            Deliver(life, () => Node!.OnSnapshotSaved(index));
        });
    }

    public void CompactLog(long belowIndex) => Disk.Compact(belowIndex);

    public long SnapshotLength(long index) => Disk.SnapshotLength(index);

    public int ReadSnapshot(long index, long offset, Span<byte> destination) => Disk.ReadSnapshot(index, offset, destination);

    public long BeginSnapshotInstall(long index, long epoch, long totalLength) => Disk.BeginInstall(index, epoch, totalLength);

    public void WriteSnapshotChunk(long index, long offset, ReadOnlySpan<byte> chunk) => Disk.WriteChunk(index, offset, chunk);

    public ReadOnlyMemory<byte>? CompleteSnapshotInstall(long index)
    {
        var state = Disk.CompleteInstall(index);
        if (state is not null)
        {
            World.CountFault("snapshot-installed");
        }

        return state;
    }

    public void ResetLog(long afterIndex, long epoch)
    {
        Disk.ResetTo(afterIndex, epoch);
        _cluster.AfterSnapshotInstalled(this);
    }

    public void Report(in ServerEvent e)
    {
        if (e.Kind == ServerEventKind.SafetyViolation)
        {
            World.Violations.Add(new Violation(ViolationKind.Invariant, $"{Name} at {World.Now}us: {e.Detail}"));
        }

        if (World.Tracing)
        {
            World.Log(Name, $"{e.Kind} epoch={e.Epoch} {(e.Peer.IsNone ? string.Empty : e.Peer + " ")}{e.Detail}");
        }
    }
}

/// <summary>
/// A monitor process: the real <see cref="MonitorNode"/> over a simulated configuration store (a group of one)
/// or over the group's <see cref="SimCoordinator"/> (a group of three or five).
/// </summary>
internal sealed class SimMonitor : SimNode, IMonitorEnvironment
{
    private readonly SimCluster _cluster;
    private readonly NodeClock _clock;

    public SimMonitor(SimCluster cluster, string name, NodeAddress address)
        : base(cluster.World, name)
    {
        _cluster = cluster;
        Address = address;
        _clock = new NodeClock(cluster.World, cluster.World.Random.NextInt64(1_000_000, 1_000_000_000), (cluster.World.Random.NextDouble() - 0.5) * 0.01);
    }

    /// <summary>Its heartbeat address, which names it in the group.</summary>
    public NodeAddress Address { get; }

    public NodeClock Clock => _clock;

    public SimConfigStore Store { get; } = new();

    public MonitorNode? Node { get; private set; }

    /// <summary>In a group: the newest committed configuration this monitor holds (its Raft log survives a crash).</summary>
    public ClusterConfig Observed { get; private set; } = ClusterConfig.Initial;

    /// <summary>In a group: the term of the last leadership view it took (0 after a restart).</summary>
    public long ViewTerm { get; private set; }

    /// <summary>In a group: whether the last view it took said it is active.</summary>
    public bool ViewActive { get; private set; }

    private SimCoordinator? Group => _cluster.Coordinator;

    public void Start()
    {
        Life++;
        Up = true;
        if (Group is null)
        {
            Node = new MonitorNode(World.Options.Monitor, Store.Stored, this, _clock, World.Random.NextUInt64(), World.Options.PromotionRule, World.Options.MonitorLeaseRule?.Invoke());
            World.Log(Name, $"started with {Store.Stored}");
        }
        else
        {
            // A restarted member knows its log but not who leads: it follows until the coordinator tells it.
            ViewTerm = 0;
            ViewActive = false;
            Node = new MonitorNode(World.Options.Monitor, Observed, this, _clock, World.Random.NextUInt64(), World.Options.PromotionRule, World.Options.MonitorLeaseRule?.Invoke(), new MonitorLeadership(0, false, NodeAddress.None, 0));
            World.Log(Name, $"started with {Observed}, following");
        }

        ScheduleTicks(() => Node!.Tick());
    }

    public void Crash()
    {
        Up = false;
        Life++;
        Node = null;
        ClearDeferred();
        if (Group is null)
        {
            Store.Crash(World.Random);
        }

        World.Log(Name, "CRASHED");
    }

    /// <summary>The coordinator's view reached this monitor: newer terms only, and a confirmation only moves later.</summary>
    public void ApplyLeadership(MonitorLeadership view)
    {
        if (view.Term < ViewTerm || (view.Term == ViewTerm && view.IsActive == ViewActive && view.ConfirmedUntil <= Node!.Leadership.ConfirmedUntil))
        {
            return;
        }

        if (view.Term != ViewTerm || view.IsActive != ViewActive)
        {
            World.Log(Name, $"term {view.Term}: {(view.IsActive ? "ACTIVE" : "following " + view.Active)}");
        }

        ViewTerm = view.Term;
        ViewActive = view.IsActive;
        Node!.OnLeadership(view);
    }

    /// <summary>A committed configuration reached this monitor through the coordinator.</summary>
    public void ObserveConfig(ClusterConfig committed)
    {
        if (committed.Version <= Observed.Version)
        {
            return;
        }

        Observed = committed;
        Node!.OnConfigObserved(committed);
    }

    /// <summary>The coordinator's answer to this monitor's compare-and-set.</summary>
    public void OnConfigWritten(bool committed, ClusterConfig current)
    {
        if (current.Version > Observed.Version)
        {
            Observed = current;
        }

        Node!.OnConfigStored(committed, current);
    }

    /// <summary>The host's dispatch: a server speaks only for itself, then the shared map to the node's input.</summary>
    protected override void Take(SimNode from, IMessage message)
    {
        var ok = MonitorInbox.SenderOf(message.Type) switch
        {
            MonitorSender.Server => from is SimServer server && MonitorInbox.ServerOf(message) == server.Address,
            MonitorSender.Client => from is SimClient,
            _ => false,
        };
        if (!ok)
        {
            Reject(from, $"the monitor does not take {message.Type} from {from.Name}");
            return;
        }

        MonitorInbox.Deliver(Node!, (from as SimClient)?.Ref ?? default, message);
    }

    protected override void AfterInput()
    {
        try
        {
            Node!.CheckInvariants();
        }
        catch (InvariantViolationException e)
        {
            World.Violations.Add(new Violation(ViolationKind.Invariant, $"{Name} at {World.Now}us: {e.Message}"));
        }
    }

    public void SendToServer<T>(NodeAddress server, in T message)
        where T : IMessage => World.Send(this, _cluster.Server(server), message);

    public void SendToClient<T>(ClientRef client, in T message)
        where T : IMessage => World.Send(this, _cluster.Client(client), message);

    public void Probe(NodeAddress server)
    {
        var target = _cluster.Server(server);
        var life = Life;
        if (World.IsCut(this, target))
        {
            World.After(SimWorld.Micros(TimeSpan.FromMilliseconds(100)), () => Deliver(life, () => Node!.OnProbeResult(server, ProbeOutcome.TimedOut)));
            return;
        }

        // The port refuses only if no process listens when the probe arrives.
        World.After(World.Latency(), () =>
        {
            var outcome = target.Up ? ProbeOutcome.Accepted : ProbeOutcome.Refused;
            World.After(World.Latency(), () => Deliver(life, () => Node!.OnProbeResult(server, outcome)));
        });
    }

    public void ProposeConfig(long expectedVersion, ClusterConfig next)
    {
        if (Group is { } group)
        {
            group.Propose(this, Node!.Leadership.Term, expectedVersion, next);
            return;
        }

        var write = Store.Begin(expectedVersion, next);
        var life = Life;
        World.After(100 + World.Random.Next(3000), () =>
        {
            if (write.Abandoned)
            {
                return;
            }

            var committed = Store.Complete(write);
            Deliver(life, () => Node!.OnConfigStored(committed, Store.Stored));
        });
    }

    public void Report(MonitorEvent e)
    {
        if (World.Tracing)
        {
            World.Log(Name, $"{e.Kind} {(e.Member.IsNone ? string.Empty : e.Member + " ")}{e.Detail}{(e.ElapsedMs is { } ms ? $" ({ms:0.0} ms)" : string.Empty)}");
        }
    }
}

/// <summary>
/// A client worker (a Jepsen "process"): the real <see cref="ClientSession"/>, calling one operation at
/// a time and recording each invoke and completion in the history.
/// </summary>
internal sealed class SimClient : SimNode, IClientEnvironment
{
    private readonly SimCluster _cluster;
    private readonly NodeClock _clock;
    private readonly int _process;
    private readonly bool _record;
    private readonly KeyValueCalls? _keyValue;
    private Operation? _open;
    private Action<ClientResult>? _onComplete;
    private int _written;
    private long _readFrom = 1;
    private int _monitor;

    public SimClient(SimCluster cluster, int process, bool record)
        : base(cluster.World, process < 0 ? "check" : $"c{process}")
    {
        _cluster = cluster;
        _process = process;
        _record = record;
        _clock = new NodeClock(cluster.World, cluster.World.Random.NextInt64(1_000_000, 1_000_000_000), (cluster.World.Random.NextDouble() - 0.5) * 0.01);
        Ref = new ClientRef(process < 0 ? 1_000_000 : process);
        _monitor = Math.Max(0, process) % cluster.Monitors.Count;
        Session = new ClientSession(cluster.World.Random.NextUInt64(), cluster.World.Options.Client, this, _clock, new Random(cluster.World.Random.Next()));
        if (record && cluster.World.Options.StateMachine == SimulatedStateMachine.KeyValue)
        {
            _keyValue = new KeyValueCalls(cluster.World, process, Name);
        }
    }

    public ClientRef Ref { get; }

    public ClientSession Session { get; }

    public bool Active { get; set; }

    public bool Idle => _open is null && _onComplete is null && _keyValue is not { IsOpen: true };

    public void Start()
    {
        Life++;
        Up = true;
        Session.Start();
        ScheduleTicks(Session.Tick);
    }

    /// <summary>Starts the workload: random appends, reads and counts separated by think time.</summary>
    public void BeginWorkload()
    {
        Active = true;
        ScheduleNext();
    }

    /// <summary>Runs one call outside the recorded history (the final read).</summary>
    public void Call(RequestKind kind, byte[] payload, TimeSpan timeout, Action<ClientResult> done)
    {
        _onComplete = done;
        Session.Submit(kind, payload, timeout);
    }

    /// <summary>What the client library takes: responses from servers, primary updates from the monitor.</summary>
    protected override void Take(SimNode from, IMessage message)
    {
        switch (message)
        {
            case ClientResponse response when from is SimServer server:
                Session.Handle(server.Address, response);
                break;
            case PrimaryUpdate update when from is SimMonitor:
                Session.Handle(update);
                break;
            default:
                Reject(from, $"a client does not take {message.Type} from {from.Name}");
                break;
        }
    }

    public void OnServerConnectionLost(NodeAddress server) => Session.OnServerConnectionLost(server);

    protected override void AfterInput()
    {
    }

    private void ScheduleNext()
    {
        var life = Life;
        World.After(World.Exponential(World.Options.MeanThinkTime), () => Deliver(life, Invoke));
    }

    private void Invoke()
    {
        if (!Active || !Idle)
        {
            return;
        }

        if (_keyValue is not null)
        {
            var (kind, payload) = _keyValue.Next();
            Session.Submit(kind, payload);
            return;
        }

        var roll = World.Random.Next(100);
        var now = World.Now;
        if (roll < 70)
        {
            var value = $"{Name}-{++_written}";
            _open = new Operation { Process = _process, Type = OpType.Invoke, Function = OpFunction.Append, Time = now, Value = value };
            Record(_open);
            Session.Submit(RequestKind.Write, MessageStoreCommands.Append(value));
        }
        else if (roll < 85)
        {
            _open = new Operation { Process = _process, Type = OpType.Invoke, Function = OpFunction.Read, Time = now, ReadFrom = _readFrom, ReadLimit = MessageStoreCommands.MaxReadCount };
            Record(_open);
            Session.Submit(RequestKind.Read, MessageStoreCommands.Read(_readFrom, MessageStoreCommands.MaxReadCount));
        }
        else
        {
            _open = new Operation { Process = _process, Type = OpType.Invoke, Function = OpFunction.Count, Time = now };
            Record(_open);
            Session.Submit(RequestKind.Read, MessageStoreCommands.Count());
        }
    }

    // ------------------------------------------------------------------ IClientEnvironment

    public void SendToServer(NodeAddress server, in ClientRequest request)
    {
        World.Send(this, _cluster.Server(server), request);

        // A client with a stale view of the primary asks another server: only one that may serve reads must answer.
        if (_keyValue is not null && request.Kind == RequestKind.Read && World.Random.Next(100) < World.Options.StrayReadPercent)
        {
            var servers = _cluster.Servers;
            var stray = servers[World.Random.Next(servers.Count)];
            if (stray.Address != server)
            {
                World.Send(this, stray, request);
            }
        }
    }

    /// <summary>
    /// Asks the monitor it is connected to; in a group, when that one is down or unreachable (the connection fails), moves
    /// on to the next, as the client library does.
    /// </summary>
    public void QueryMonitor()
    {
        var monitors = _cluster.Monitors;
        if (monitors.Count > 1)
        {
            for (var tries = 0; tries < monitors.Count && (!monitors[_monitor].Up || World.IsCut(this, monitors[_monitor])); tries++)
            {
                _monitor = (_monitor + 1) % monitors.Count;
            }
        }

        World.Send(this, monitors[_monitor], new PrimaryQuery(Session.ClientId, true), "PrimaryQuery");
    }

    public void Complete(in ClientResult result)
    {
        if (_onComplete is { } done)
        {
            _onComplete = null;
            done(result);
            return;
        }

        if (_keyValue?.Complete(result) is { } call)
        {
            World.KeyValueHistory.Add(call);
            if (World.Tracing)
            {
                World.Log(Name, KeyValueCalls.Describe(call) + (call.Outcome == KvOutcome.Ok ? $" by {result.Server} e{result.Epoch}" : $" {result.Error}"));
            }

            if (Active)
            {
                ScheduleNext();
            }

            return;
        }

        if (_open is not { } open)
        {
            return;
        }

        _open = null;
        var now = World.Now;
        var type = result.Outcome switch
        {
            OutcomeKind.Ok => OpType.Ok,
            OutcomeKind.Failed => OpType.Fail,
            _ => OpType.Info,
        };
        var completion = new Operation
        {
            Process = _process,
            Type = type,
            Function = open.Function,
            Time = now,
            Value = open.Value,
            Epoch = type == OpType.Ok ? result.Epoch : null,
            Server = type == OpType.Ok ? result.Server.ToString() : null,
            Error = type == OpType.Ok ? null : result.Error,
        };
        if (type == OpType.Ok)
        {
            switch (open.Function)
            {
                case OpFunction.Append:
                    completion = completion with { Seq = MessageStoreCommands.DecodeSeq(result.Payload.Span) };
                    break;
                case OpFunction.Read:
                    try
                    {
                        var messages = MessageStoreCommands.DecodeMessages(result.Payload.Span);
                        completion = completion with { ReadFrom = open.ReadFrom, ReadValues = [.. messages.Select(m => m.Text)] };
                    }
                    catch (MessagesRemovedException removed)
                    {
                        // Retention removed what it asked for: it read nothing, and reads from the first kept one next.
                        _readFrom = Math.Max(_readFrom, removed.FirstRetained);
                        completion = completion with { Type = OpType.Fail, Error = removed.Message, Epoch = null, Server = null };
                    }

                    break;
                case OpFunction.Count:
                    completion = completion with { Count = MessageStoreCommands.DecodeSeq(result.Payload.Span) };
                    break;
            }
        }

        Record(completion);
        if (Active)
        {
            ScheduleNext();
        }
    }

    public void Report(in ClientEvent e)
    {
        if (World.Tracing && e.Kind == ClientEventKind.PrimaryChanged)
        {
            World.Log(Name, $"primary is now {e.Primary} (epoch {e.Epoch}, {e.Detail})");
        }
    }

    private void Record(Operation op)
    {
        if (_record)
        {
            World.History.Add(op);
        }

        if (World.Tracing)
        {
            var detail = op.Type switch
            {
                OpType.Invoke => op.Value ?? string.Empty,
                OpType.Ok => op.Function switch
                {
                    OpFunction.Append => $"{op.Value} -> seq {op.Seq} by {op.Server} e{op.Epoch}",
                    OpFunction.Read => $"{op.ReadValues?.Count} messages",
                    _ => $"count {op.Count}",
                },
                _ => $"{op.Value} {op.Error}",
            };
            World.Log(Name, $"{op.Type.ToString().ToUpperInvariant()} {op.Function} {detail}");
        }
    }

    /// <summary>Text of a failure (for traces).</summary>
    public static string Text(ReadOnlyMemory<byte> payload) => Encoding.UTF8.GetString(payload.Span);
}

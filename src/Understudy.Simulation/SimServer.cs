using Understudy.Checking;
using Understudy.Core;
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
        GoDown();
        Node = null;
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

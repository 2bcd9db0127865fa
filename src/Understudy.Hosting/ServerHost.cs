using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;
using Understudy.Storage;
using Understudy.Transport;

namespace Understudy.Hosting;

/// <summary>
/// A server process: runs <see cref="ServerNode"/> on one event loop, with the log in segment files,
/// one TCP port for clients and members, and a persistent heartbeat connection to each monitor of the group.
/// </summary>
public sealed class ServerHost : IServerEnvironment, IAsyncDisposable
{
    private readonly ServerHostOptions _options;
    private readonly ILogger _logger;
    private readonly TcpTransport _transport = new("stop the process that holds it, or choose another port with --port (or UNDERSTUDY_SERVER__PORT)");
    private readonly ConcurrentDictionary<long, FrameConnection> _clients = new();
    private readonly ConcurrentDictionary<NodeAddress, FrameConnection> _inboundServers = new();
    private readonly ConcurrentDictionary<NodeAddress, BufferedPeer> _outboundServers = new();
    private readonly TaskCompletionSource<string> _fatal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<RehearsalOutcome?> _rehearsal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Not readonly: the state machine's name joins it once the machine is made (StartCoreAsync).
    private FrameConnectionOptions _connectionOptions;

    // Entries the node appended during this burst of the loop: handed to the log in one call (one queue item, one
    // array) when the node asks for a sync or a truncation, or when the burst ends. Touched only on the loop.
    private readonly List<LogEntry> _appends = [];

    // Client connections holding replies of this turn (Reply), for FlushTurn to write. Touched only on the loop.
    private readonly List<FrameConnection> _heldReplies = [];

    // A sync the log answered at once, on the loop (SyncLog), for FlushTurn to report to the node. Touched only on the loop.
    private (long Through, long Generation)? _syncedNow;
    private DurableLog _log = null!;
    private SnapshotShipping _shipping = null!;
    private ServerNode _node = null!;
    private EventLoop _loop = null!;
    private FrameServer? _server;
    private MonitorLinks? _monitors;

    // The snapshot being written in the background (one at a time: the node asks for the next only once told).
    private Task _snapshotWrite = Task.CompletedTask;

    // The newest epoch whose promotion of this server was logged on arrival (pushes repeat; each is logged once).
    private long _promotionNoted;

    private ServerHost(ServerHostOptions options, ILoggerFactory loggers)
    {
        _options = options;
        _logger = loggers.CreateLogger("Understudy.Server");
        Metrics = new ServerMetrics();
        Incarnation = HostIdentity.NewIncarnation();
        _connectionOptions = HostIdentity.ConnectionOptions(PeerRole.Server, options.Identity, Incarnation, options.ClusterKey, loggers);
    }

    public NodeAddress Address => _options.Identity;

    public ulong Incarnation { get; }

    public ServerMetrics Metrics { get; }

    public ServerHostOptions Options => _options;

    /// <summary>The heartbeat address of the monitor that last acknowledged as the active one; none while unknown.</summary>
    public NodeAddress ActiveMonitor => _monitors?.Active ?? NodeAddress.None;

    /// <summary>How many of <see cref="ServerHostOptions.Monitors"/> a heartbeat connection is up to.</summary>
    public int ConnectedMonitors => _monitors?.ConnectedCount ?? 0;

    /// <summary>Monitor-bound messages waiting for an active monitor to be known.</summary>
    public int HeldForMonitor => _monitors?.HeldCount ?? 0;

    /// <summary>Completes with a reason when the server must stop (its disk failed, or its state machine threw in Apply).</summary>
    public Task<string> Fatal => _fatal.Task;

    /// <summary>Opens the log, binds the port, connects to the monitor and starts serving.</summary>
    public static async Task<ServerHost> StartAsync(ServerHostOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        options.Validate();
        return await HostStart.OrDisposeAsync(new ServerHost(options, loggers), h => h.StartCoreAsync(cancellationToken));
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        // The newest valid snapshot (a torn or corrupt one is refused and the one before used) and only the log after it.
        _log = DurableLog.OpenFromSnapshot(_options.DataDirectory, new DurableLogOptions
        {
            FsyncPolicy = _options.Fsync,
            SegmentSize = _options.SegmentSize,
            Synced = (index, generation) => _loop.Post(() => _node.OnLogSynced(index, generation)),
            Faulted = e => _fatal.TrySetResult($"the log's disk failed: {e.Message}"),
        }, _logger);
        if (_log.LastIndex < _log.RecoveredFrom - 1)
        {
            // The snapshot reaches past the log's end. Neither an installed snapshot (its log start says where its log
            // resumes) nor one taken here (never past the durable log) does so; a folder from an earlier version may.
            _log.ResetTo(_log.RecoveredFrom);
        }

        _shipping = new SnapshotShipping(_log.Snapshots, _logger);
        var protocol = _options.Protocol with
        {
            Durable = _options.Fsync == FsyncPolicy.Always,
            ProcessId = Environment.ProcessId,
            HttpPort = _options.HttpPort,
        };
        // A snapshot installed from the primary may come with a log that resumes below it (the entries its state reads):
        // a restart before they all arrived goes on backfilling from where the log ends.
        var snapshot = _log.RecoveredSnapshot is { } stored
            ? new ServerSnapshot(stored.Index, stored.Epoch, stored.State) with
            {
                LogResumesAfter = _log.RecoveredLogStart is { } start ? start.NextIndex - 1 : stored.Index,
                LogResumesAfterEpoch = _log.RecoveredLogStart is { } resumed ? resumed.EpochBefore : stored.Epoch,
            }
            : (ServerSnapshot?)null;
        // Every call into the user's state machine goes through the guard: a throwing Apply stops this server, a slow one is reported.
        var userMachine = _options.CreateStateMachine();
        _connectionOptions = _connectionOptions with { StateMachine = BuiltInStateMachines.NameOf(userMachine) };
        var machine = GuardedStateMachine.Wrap(userMachine, _options.SlowApplyThreshold, Metrics, _logger, reason => _fatal.TrySetResult(reason));
        _node = new ServerNode(_options.Identity, Incarnation, protocol, machine, this, TimeProvider.System, _log.RecoveredEpoch, _log.RecoveredEntries, archive: new DiskArchive(_log), snapshot: snapshot);
        RecoveredEntries = _log.RecoveredEntries.Count;

        // The node holds what it needs now (its window copies the tail, the state is restored): nothing else may pin them.
        _log.ReleaseRecovered();

        // Recovery read whole segment files (up to --segment-bytes each) into one buffer, and built the tail's lists:
        // large-object-heap arrays that are garbage now but that the GC neither compacts nor returns by itself, so a
        // restarted server kept 50-80 MiB of free large-object heap resident for its whole life (docs/BENCHMARKS.md,
        // "Round 19"). One aggressive collection, before the loop starts, compacts it and gives it back.
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        // The tick from the loop's own thread: a timer's callback woke the thread pool twice per tick, and a backup, whose
        // frames all run on its readers, spent a third of its CPU on idle workers spinning for that (EventLoop.Ticker.cs).
        // A primary still ticks through the pool (FlushTurn sets TicksThroughPool from the node's role).
        _loop = new EventLoop(FlushTurn, e => LogMessages.LoopError(_logger, e), runOnPoster: true, tickThread: true);
        LogMessages.ServerStarting(_logger, _options.Identity.ToString(), RecoveredEntries, _log.RecoveredEpoch, _options.DataDirectory, _options.Fsync.ToString().ToLowerInvariant());

        // Answers to gets held while a read's requests are handled go out together at its end (HandleAsync).
        _server = await FrameServer.StartAsync(_transport, _options.Listen, _connectionOptions with { AfterReadBatch = static c => c.FlushHeld() }, HandleAsync, OnConnected, cancellationToken);
        _monitors = new MonitorLinks(_transport, _options.Monitors, _connectionOptions with { Role = PeerRole.Server }, HandleAsync, _logger);
        _monitors.Start();
        _loop.Start(() => _node.Tick(), _options.TickInterval);
        if (_options.RehearsePromotion)
        {
            StartRehearsal(protocol, userMachine);
        }
        else
        {
            _rehearsal.SetResult(null);
        }
    }

    /// <summary>
    /// The promotion rehearsal's outcome once it has run (<see cref="ServerHostOptions.RehearsePromotion"/>); null when it
    /// is off or failed. Nothing waits for it: the server serves meanwhile.
    /// </summary>
    public Task<RehearsalOutcome?> Rehearsal => _rehearsal.Task;

    /// <summary>
    /// Runs <see cref="PromotionRehearsal"/> on a thread of its own, beside the node: the methods a first promotion needs are
    /// compiled now, while this server is a backup, rather than during a failover. A user's state machine is not run:
    /// the rehearsal uses the message store instead (the primary's code around the machine is the same).
    /// </summary>
    private void StartRehearsal(ServerOptions protocol, IStateMachine userMachine)
    {
        var machine = userMachine is KeyValueStore ? BuiltInStateMachine.Kv : BuiltInStateMachine.Messages;
        var thread = new Thread(() =>
        {
            try
            {
                var started = Stopwatch.GetTimestamp();
                var outcome = PromotionRehearsal.Run(protocol, machine, TimeProvider.System);
                LogMessages.PromotionRehearsed(_logger, Stopwatch.GetElapsedTime(started).TotalMilliseconds, outcome.WritesCommitted, outcome.ReadsAnswered);
                _rehearsal.SetResult(outcome);
            }
            catch (Exception e)
            {
                // Best effort: a rehearsal that fails costs only the compile it was to save.
                LogMessages.PromotionRehearsalFailed(_logger, e.Message);
                _rehearsal.SetResult(null);
            }
        })
        {
            IsBackground = true,
            Name = "promotion rehearsal",
        };
        thread.Start();
    }

    /// <summary>Reads the node's state on its loop (for HTTP endpoints and metrics).</summary>
    public Task<T> ReadAsync<T>(Func<ServerNode, T> read) => _loop.InvokeAsync(() => read(_node));

    /// <summary>The node loop's turns and the inputs it ran (for metrics).</summary>
    public (long Turns, long Items) LoopCounts => (_loop.Turns, _loop.Processed);

    /// <summary>Log entries read at start-up (those after the snapshot it started from).</summary>
    public int RecoveredEntries { get; private set; }

    /// <summary>Storage statistics (thread-safe).</summary>
    public DurableLogStats StorageStats => _log.Stats;

    // ------------------------------------------------------------------ inbound

    private void OnConnected(FrameConnection connection)
    {
        var hello = connection.PeerHello;
        if (hello.Role is PeerRole.Client or PeerRole.Admin)
        {
            _clients[connection.Id] = connection;
            _ = connection.Closed.ContinueWith(_ => _clients.TryRemove(connection.Id, out FrameConnection? _), TaskScheduler.Default);
        }
        else if (hello.Role == PeerRole.Server && !hello.From.IsNone)
        {
            _inboundServers[hello.From] = connection;
            _ = connection.Closed.ContinueWith(_ => _inboundServers.TryRemove(new KeyValuePair<NodeAddress, FrameConnection>(hello.From, connection)), TaskScheduler.Default);
        }
    }

    private ValueTask HandleAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
    {
        var sender = ServerInbox.SenderOf(message.Type);
        var fromMember = connection.PeerHello.Role is PeerRole.Server or PeerRole.Monitor && (connection.IsAuthenticated || _options.ClusterKey.IsEmpty);
        if (sender == ServerSender.None || (sender == ServerSender.Member && !fromMember))
        {
            LogMessages.UnexpectedMessage(_logger, message.Type.ToString(), connection.RemoteEndPoint, connection.PeerHello.Role.ToString());
            return ValueTask.CompletedTask;
        }

        // A linearizable get the node may answer without its loop (OffLoopReads): answered here, on the thread that read it,
        // and written with the other answers to the same read's requests when the reader has handled them all.
        if (message is ClientRequest { Kind: RequestKind.Read } read && _node.Reads.TryAnswer(read, out var answer))
        {
            Metrics.Reads.Inc();
            Metrics.ResponsesWith(answer.Status).Inc();
            connection.SendHeld(answer, out _);
            return ValueTask.CompletedTask;
        }

        ClusterConfig? members = null;
        switch (message)
        {
            case ClientRequest { Kind: RequestKind.Write }:
                Metrics.Writes.Inc();
                break;
            case ClientRequest:
                Metrics.Reads.Inc();
                break;
            case Replicate:
                Metrics.FramesReceived.Inc();
                break;
            case ReplicateAck:
                Metrics.AcksReceived.Inc();
                break;
            case HeartbeatAck ack:
                members = ack.Config;
                break;
            case ConfigPush push:
                members = push.Config;
                NotePromotion(push.Config);
                break;
        }

        Post(new ClientRef(connection.Id), message, members);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Logs, as it arrives and before the loop takes it, a push naming this server primary of a newer epoch: the first
    /// timestamp of a failover on the new primary, so its log splits the wait for the loop from the promotion's own work.
    /// </summary>
    private void NotePromotion(ClusterConfig config)
    {
        var noted = Volatile.Read(ref _promotionNoted);
        if (config.Primary == _options.Identity && config.Epoch > noted && Interlocked.CompareExchange(ref _promotionNoted, config.Epoch, noted) == noted)
        {
            LogMessages.PromotionReceived(_logger, config.Epoch);
        }
    }

    /// <summary>
    /// Delivers on the loop through the mapping the simulator uses too. A configuration from the monitor first
    /// opens connections to the members it names, so the node's first frames to a new backup have a way out.
    /// One closure per message, as when each case posted its own.
    /// </summary>
    private void Post(ClientRef client, IMessage message, ClusterConfig? members)
    {
        // Replication between members runs its turn on the reader's thread when no turn is running: a backup's turn per
        // frame, a primary's per acknowledgement, with no thread woken. Clients' requests wait in the queue for a
        // pooled turn instead: what arrives while one is woken goes out in one frame, and run one by one on the readers
        // they made a frame each (docs/BENCHMARKS.md, round 23).
        if (message is Replicate or ReplicateAck)
        {
            _loop.PostAndRun(() => Deliver(client, message, members));
        }
        else
        {
            _loop.Post(() => Deliver(client, message, members));
        }
    }

    private void Deliver(ClientRef client, IMessage message, ClusterConfig? members)
    {
        if (members is not null)
        {
            ConnectToMembers(members);
        }

        ServerInbox.Deliver(_node, client, message);
        if (message is Replicate frame)
        {
            // Decoded for this delivery alone; the node copied what it keeps.
            Replicate.Recycle(frame);
        }
    }

    // ------------------------------------------------------------------ IServerEnvironment (called on the loop)

    public void SendToMonitor<T>(in T message)
        where T : IMessage => _monitors?.Send(message);

    public void SendToServer<T>(NodeAddress to, in T message)
        where T : IMessage
    {
        if (message is Replicate frame)
        {
            Metrics.FramesSent.Inc();
            Metrics.RecordBatch(frame.EntryCount);
        }

        // Every member keeps its own connection to every other member and sends on it, frames and acks alike. Only
        // while that connection is not up yet (just after a start or a promotion) does a message go back on the
        // connection the other side opened, if there is one, rather than wait in our own connection's buffer.
        // An acknowledgement, or a frame of new writes at the log's end, is one small frame someone waits for: written
        // on the loop with one system call rather than handed to the connection's writer task, which would be one more
        // thread woken per frame. A frame of a backlog (the primary committed past it, more follow) goes to the writer,
        // which sends a run of them in one call while the loop reads the next.
        var now = message is ReplicateAck || (message is Replicate { } stream && stream.LastIndex >= stream.CommitIndex);
        if (_inboundServers.TryGetValue(to, out var inbound) && !inbound.IsClosing && !(_outboundServers.TryGetValue(to, out var own) && own.IsConnected))
        {
            if (now)
            {
                inbound.SendNow(message);
            }
            else
            {
                inbound.Send(message);
            }

            return;
        }

        if (now)
        {
            Outbound(to).SendNow(message);
        }
        else
        {
            Outbound(to).Send(message);
        }
    }

    public void Reply(ClientRef client, in ClientResponse response)
    {
        Metrics.ResponsesWith(response.Status).Inc();
        if (_clients.TryGetValue(client.Id, out var connection) && connection.SendHeld(response, out var mustFlush) && mustFlush)
        {
            // Held until the turn ends (FlushTurn), then written on the loop with one system call per connection: the
            // writes one acknowledgement commits are answered together, so clients that share a connection get their
            // replies in one write, not one each; a hand-off to the writer task per reply was most of the cost with many
            // one-request connections.
            _heldReplies.Add(connection);
        }
    }

    public void AppendLog(ReadOnlySpan<LogEntry> entries)
    {
        foreach (ref readonly var entry in entries)
        {
            _appends.Add(entry);
        }
    }

    public void TruncateLog(long fromIndex)
    {
        FlushAppends();
        _log.Truncate(fromIndex);
    }

    public void SyncLog(long throughIndex, long generation)
    {
        // With fsync never, and nothing else queued for the log, the burst's entries are written here, on the loop: the
        // node learns they are durable in this same turn (FlushTurn) instead of from the writer through another turn.
        var appends = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_appends);
        try
        {
            if (_log.AppendAndSync(appends, throughIndex, generation, out var synced))
            {
                _syncedNow = (synced, generation);
            }
        }
        finally
        {
            _appends.Clear();
        }
    }

    public void SaveEpoch(long epoch) => _log.SaveEpoch(epoch);

    public void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot)
    {
        // Off the loop: a snapshot is written, fsynced and renamed while the node keeps serving. Until it answers, the
        // node asks for no other, and nothing is compacted.
        var store = _log.Snapshots;
        _snapshotWrite = _snapshotWrite.ContinueWith(
            _ =>
            {
                try
                {
                    store.Save(index, epoch, snapshot.Span);
                    _loop.Post(() => _node.OnSnapshotSaved(index));
                }
                catch (Exception e) when (e is StorageException or IOException or UnauthorizedAccessException)
                {
                    // Not fatal: the log still holds everything; the next start replays more. No further snapshot is
                    // asked for in this process (the node waits for this one), which the warning says.
                    LogMessages.SnapshotFailed(_logger, index, e.Message);
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
    }

    public void CompactLog(long belowIndex)
    {
        FlushAppends();
        _log.RemoveBelow(belowIndex);
    }

    public long SnapshotLength(long index) => _shipping.Length(index);

    public int ReadSnapshot(long index, long offset, Span<byte> destination) => _shipping.Read(index, offset, destination);

    public long BeginSnapshotInstall(long index, long epoch, long totalLength)
    {
        try
        {
            return _shipping.BeginInstall(index, epoch, totalLength);
        }
        catch (StorageException e)
        {
            _fatal.TrySetResult($"the snapshot folder's disk failed: {e.Message}");
            throw;
        }
    }

    public void WriteSnapshotChunk(long index, long offset, ReadOnlySpan<byte> chunk)
    {
        try
        {
            _shipping.Write(index, offset, chunk);
        }
        catch (StorageException e)
        {
            _fatal.TrySetResult($"the snapshot folder's disk failed: {e.Message}");
            throw;
        }
    }

    public ReadOnlyMemory<byte>? CompleteSnapshotInstall(long index) => _shipping.Complete(index);

    public void ResetLog(long afterIndex, long epoch)
    {
        // Appends buffered before the reset belong to the old log; ordered with it, they are removed with it.
        FlushAppends();
        _shipping.Install(_log, afterIndex, epoch);
    }

    public void Report(in ServerEvent e)
    {
        switch (e.Kind)
        {
            case ServerEventKind.SafetyViolation:
                LogMessages.SafetyViolation(_logger, e.Epoch, e.Detail);
                break;
            case ServerEventKind.SnapshotTransferStarted or ServerEventKind.SnapshotInstalled:
                Metrics.SnapshotTransfers.WithLabels(e.Kind == ServerEventKind.SnapshotInstalled ? "installed" : "started").Inc();
                LogMessages.ServerEvent(_logger, e.Kind.ToString(), e.Epoch, e.Peer.IsNone ? string.Empty : e.Peer.ToString(), e.Detail);
                break;
            case ServerEventKind.SnapshotChunkRefused:
                Metrics.SnapshotTransfers.WithLabels("refused").Inc();
                LogMessages.ServerEventDebug(_logger, e.Kind.ToString(), e.Epoch, e.Peer.IsNone ? string.Empty : e.Peer.ToString(), e.Detail);
                break;
            case ServerEventKind.BecamePrimary or ServerEventKind.SteppedDown or ServerEventKind.HandoverReady or ServerEventKind.HandoverAbandoned or ServerEventKind.LeaseLapsed or ServerEventKind.Truncated or ServerEventKind.InSyncChangeAnswered:
                LogMessages.ServerEvent(_logger, e.Kind.ToString(), e.Epoch, e.Peer.IsNone ? string.Empty : e.Peer.ToString(), e.Detail);
                break;
            case ServerEventKind.StaleFrameRejected or ServerEventKind.LogMismatch:
                LogMessages.ServerEventDebug(_logger, e.Kind.ToString(), e.Epoch, e.Peer.IsNone ? string.Empty : e.Peer.ToString(), e.Detail);
                break;
            default:
                LogMessages.ServerEventDebug(_logger, e.Kind.ToString(), e.Epoch, e.Peer.IsNone ? string.Empty : e.Peer.ToString(), e.Detail);
                break;
        }
    }

    /// <summary>
    /// Keeps a connection open to every other member, whatever this server's role: a backup promoted later then
    /// replicates at once instead of first connecting (and handshaking) while its clients wait. On the loop, as
    /// every other <see cref="Outbound"/> call: two threads racing through GetOrAdd could start a peer twice.
    /// </summary>
    private void ConnectToMembers(ClusterConfig config)
    {
        foreach (var member in config.Members)
        {
            if (member.Address != _options.Identity && !_outboundServers.ContainsKey(member.Address))
            {
                Outbound(member.Address);
            }
        }
    }

    /// <summary>
    /// The end of each turn of the loop: the node sends what the burst produced, the log takes the burst's entries, and
    /// when the log wrote them at once (<see cref="SyncLog"/>) the node is told so and flushes again, which sends a
    /// backup's acknowledgement, or a primary's commits and replies, without waiting for another turn.
    /// </summary>
    private void FlushTurn()
    {
        try
        {
            // A primary's clients' turns wait on the thread pool, whose workers the ticks keep awake; a backup's ticks run
            // on the tick thread, so its pool, which nothing else uses, can sleep (docs/BENCHMARKS.md, round 31).
            _loop.TicksThroughPool = _node.Role == ServerRole.Primary;
            _node.Flush();
            FlushAppends();
            while (_syncedNow is { } synced)
            {
                _syncedNow = null;
                _node.OnLogSynced(synced.Through, synced.Generation);
                _node.Flush();
                FlushAppends();
            }
        }
        finally
        {
            // The turn's replies, held by Reply: one write per client connection. Even when the turn failed, what it
            // answered is sent.
            foreach (var connection in _heldReplies)
            {
                connection.FlushHeld();
            }

            _heldReplies.Clear();
        }
    }

    /// <summary>Hands the burst's appends to the log, in order, as one batch.</summary>
    private void FlushAppends()
    {
        if (_appends.Count == 0)
        {
            return;
        }

        try
        {
            _log.Append(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_appends));
        }
        finally
        {
            _appends.Clear();
        }
    }

    private BufferedPeer Outbound(NodeAddress to) =>
        _outboundServers.GetOrAdd(to, address =>
        {
            var peer = new BufferedPeer(_transport, address, _connectionOptions, HandleAsync, new ReconnectOptions { InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromSeconds(1), ConnectTimeout = TimeSpan.FromSeconds(1) });
            peer.Disconnected += closed => _loop.Post(() => _node.OnPeerConnectionLost(address));
            peer.Start();
            return peer;
        });

    public async ValueTask DisposeAsync()
    {
        if (_loop is not null)
        {
            await _loop.DisposeAsync();
        }

        if (_monitors is not null)
        {
            await _monitors.DisposeAsync();
        }

        foreach (var peer in _outboundServers.Values)
        {
            await peer.DisposeAsync();
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        await _snapshotWrite.ConfigureAwait(false);
        _shipping?.Dispose();
        if (_log is not null)
        {
            await _log.DisposeAsync();
        }
    }

    /// <summary>The log on disk as the node's window reads it (entries it evicted, all durable by then).</summary>
    /// <remarks>
    /// Encoded runs are read into one buffer, reused by the next read (<see cref="ILogArchive.TryReadEncoded"/> allows
    /// it): only the node's loop reads them, and it sends each frame, which copies it, before it reads the next.
    /// </remarks>
    private sealed class DiskArchive(DurableLog log) : ILogArchive
    {
        private byte[] _encoded = [];

        public long FirstIndex => log.FirstIndex;

        public LogEntry[] Read(long from, int maxCount, int maxBytes) =>
            from < log.FirstIndex ? [] : log.Read(from, Math.Max(1, maxCount), Math.Max(1, maxBytes));

        public bool TryReadEncoded(long from, int maxCount, int maxBytes, out EncodedEntries run)
        {
            run = from < log.FirstIndex ? default : log.ReadEncoded(from, Math.Max(1, maxCount), Math.Max(1, maxBytes), ref _encoded);
            return true;
        }
    }
}

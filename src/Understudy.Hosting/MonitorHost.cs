using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Understudy.Coordination;
using Understudy.Coordination.Etcd;
using Understudy.Coordination.Raft;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Protocol;
using Understudy.Storage;
using Understudy.Transport;

namespace Understudy.Hosting;

/// <summary>
/// The monitor process: runs <see cref="MonitorNode"/> on one event loop, with heartbeats from servers on one port
/// and clients and operators on another. The configuration and which monitor of the group is active come from an
/// <see cref="IMonitorCoordinator"/> (a file for a group of one, Raft or etcd for a group of three or five); the
/// host turns its answers into the node's inputs on the loop.
/// </summary>
public sealed partial class MonitorHost : IMonitorEnvironment, IAsyncDisposable
{
    private readonly MonitorHostOptions _options;
    private readonly ILogger _logger;
    private readonly TcpTransport _transport = new("stop the process that holds it (another monitor?), or choose other ports with --port/--client-port");
    private readonly ConcurrentDictionary<NodeAddress, FrameConnection> _servers = new();
    private readonly ConcurrentDictionary<long, FrameConnection> _clients = new();
    private readonly ConcurrentDictionary<long, Channel<MonitorEvent>> _eventWatchers = new();
    private readonly TaskCompletionSource<string> _fatal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private readonly FrameConnectionOptions _connectionOptions;
    private readonly Func<NodeAddress, ILoggerFactory, IMonitorCoordinator> _coordinatorFactory;
    private readonly ILoggerFactory _loggers;
    private IMonitorCoordinator? _coordinator;
    private MonitorNode _node = null!;

    // On the loop: the leadership the node was last told, and whether this monitor last reached a quorum.
    private Leadership _applied = Leadership.Unknown;

    // The term in which a linearizable load of the configuration reached the node (a group of one: always), and whether
    // one is under way: the node is told it is active only after it (see RefreshLeadership).
    private long _configLoadedInTerm = -1;
    private bool _termLoadInFlight;
    private bool? _hadQuorum;
    private EventLoop _loop = null!;
    private FrameServer? _heartbeats;
    private FrameServer? _clientApi;
    private long _watcherIds;

    private MonitorHost(MonitorHostOptions options, ILoggerFactory loggers, Func<NodeAddress, ILoggerFactory, IMonitorCoordinator> coordinator)
    {
        _options = options;
        _loggers = loggers;
        _coordinatorFactory = coordinator;
        _logger = loggers.CreateLogger("Understudy.Monitor");
        Metrics = new MonitorMetrics();
        Incarnation = HostIdentity.NewIncarnation();
        _connectionOptions = HostIdentity.ConnectionOptions(PeerRole.Monitor, options.HeartbeatListen, Incarnation, options.ClusterKey, loggers);
    }

    public ulong Incarnation { get; }

    public MonitorMetrics Metrics { get; }

    public MonitorHostOptions Options => _options;

    public NodeAddress HeartbeatAddress => _heartbeats?.LocalAddress ?? _options.HeartbeatListen;

    public NodeAddress ClientAddress => _clientApi?.LocalAddress ?? _options.ClientListen;

    /// <summary>Completes with a reason when the monitor must stop (its configuration store failed).</summary>
    public Task<string> Fatal => _fatal.Task;

    /// <summary>Starts a monitor on the coordinator its options choose.</summary>
    public static Task<MonitorHost> StartAsync(MonitorHostOptions options, ILoggerFactory loggers, CancellationToken cancellationToken) =>
        StartAsync(options, loggers, (self, l) => CreateCoordinator(options, self, l), cancellationToken);

    /// <summary>
    /// Starts a monitor on the coordinator <paramref name="coordinator"/> makes from this monitor's heartbeat address
    /// (tests use it to run a group on a coordinator they control). The host starts and disposes it.
    /// </summary>
    public static async Task<MonitorHost> StartAsync(MonitorHostOptions options, ILoggerFactory loggers, Func<NodeAddress, ILoggerFactory, IMonitorCoordinator> coordinator, CancellationToken cancellationToken)
    {
        options.Validate();
        return await HostStart.OrDisposeAsync(new MonitorHost(options, loggers, coordinator), h => h.StartCoreAsync(cancellationToken));
    }

    /// <summary>The coordinator <paramref name="options"/> asks for, for the monitor named <paramref name="self"/>.</summary>
    public static IMonitorCoordinator CreateCoordinator(MonitorHostOptions options, NodeAddress self, ILoggerFactory loggers) => options.Coordinator switch
    {
        CoordinatorKind.File => new SingleMonitorCoordinator(FileConfigurationStore.Open(options.DataDirectory, loggers.CreateLogger("Understudy.Monitor")), self),
        CoordinatorKind.Raft => new RaftCoordinator(RaftOptions(options), loggers),
        CoordinatorKind.Etcd => new EtcdCoordinator(new EtcdCoordinatorOptions
        {
            Endpoints = [.. options.EtcdEndpoints.Select(e => new Uri(e))],
            Self = self,
            Logger = loggers.CreateLogger("Understudy.Coordination.Etcd"),
        }),
        _ => throw new ArgumentOutOfRangeException(nameof(options), $"coordinator {(int)options.Coordinator} is not one of file, raft, etcd"),
    };

    /// <summary>The Raft group <paramref name="options"/> describe, this monitor first.</summary>
    public static RaftCoordinatorOptions RaftOptions(MonitorHostOptions options) => new()
    {
        Self = new MonitorGroupMember(options.RaftAddress, options.HeartbeatListen, options.ClientListen),
        Peers = [.. options.Peers.Where(p => p != options.HeartbeatListen).Select(p => new MonitorGroupMember(options.RaftAddressOf(p), p, options.ClientAddressOf(p)))],
        DataDirectory = options.DataDirectory,
    };

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        // The listeners first, so that the coordinator is named by the address servers really reach; what arrives
        // meanwhile waits in the loop's inbox, which runs only once the node exists.
        _loop = new EventLoop(() => { }, e => LogMessages.LoopError(_logger, e));
        _heartbeats = await FrameServer.StartAsync(_transport, _options.HeartbeatListen, _connectionOptions, HandleServerAsync, OnServerConnected, cancellationToken);
        _clientApi = await FrameServer.StartAsync(_transport, _options.ClientListen, _connectionOptions, HandleClientAsync, OnClientConnected, cancellationToken);
        _coordinator = _coordinatorFactory(_heartbeats.LocalAddress, _loggers);

        // Events may come on any thread and in any order; the loop reads the coordinator's current view instead of
        // trusting the event's copy, so a late event never takes the node back to an older leadership. Subscribed
        // before the start so that no committed configuration slips between loading and listening: what arrives
        // waits in the loop's inbox, and the node ignores versions it already has.
        _coordinator.LeadershipChanged += _ => _loop.Post(RefreshLeadership);
        _coordinator.ConfigChanged += config => _loop.Post(() => OnConfigObserved(config));
        await _coordinator.StartAsync(cancellationToken);
        var stored = await _coordinator.LoadAsync(cancellationToken);
        _applied = _coordinator.Leadership;
        if (_coordinator is SingleMonitorCoordinator)
        {
            _configLoadedInTerm = _applied.Term;
        }
        else if (_applied.IsActive)
        {
            // Which came first, the load or the election, is unknown: start as a follower; the first tick loads again.
            _applied = _applied with { IsActive = false, ConfirmedUntil = 0 };
        }

        _node = new MonitorNode(_options.Protocol, stored, this, TimeProvider.System, Incarnation, leadership: ToCore(_applied));
        LogMessages.MonitorStarting(_logger, _heartbeats.LocalAddress.ToString(), _clientApi.LocalAddress.ToString(), stored.ToString());
        LogMessages.MonitorGroup(_logger, _options.Coordinator.ToString().ToLowerInvariant(), _coordinator.Peers.Count, string.Join(',', _coordinator.Peers.Select(p => p.Address)));

        // Run the crash-detection path once now (a probe of our own port), so the first real crash is not
        // also the first time that code is compiled: on a small machine that cost tens of milliseconds.
        _ = PortProbe.ProbeAsync(_clientApi.LocalAddress, _options.ProbeTimeout, _stopping.Token).AsTask();
        _loop.Start(
            () =>
            {
                // Every tick, before the node decides: leases are granted only within the confirmed leadership, so
                // the node must see ConfirmedUntil move as the coordinator renews it.
                RefreshLeadership();
                _node.Tick();
            },
            _options.TickInterval);
    }

    /// <summary>The coordinator's view of the group (for /cluster, /health, /metrics).</summary>
    public Leadership Leadership => _coordinator?.Leadership ?? Leadership.Unknown;

    /// <summary>The group's members as this monitor sees them.</summary>
    public IReadOnlyList<MonitorPeer> Peers => _coordinator?.Peers ?? [];

    /// <summary>The group: members, who is active, the term, whether this monitor reaches a quorum.</summary>
    public MonitorGroupStatus GroupStatus() => MonitorGroupStatus.From(_options.Coordinator, HeartbeatAddress, Leadership, Peers);

    /// <summary>Reads the monitor's state on its loop.</summary>
    public Task<T> ReadAsync<T>(Func<MonitorNode, T> read) => _loop.InvokeAsync(() => read(_node));

    public Task<ClusterStatus> StatusAsync() => ReadAsync(n => ClusterStatus.From(n, TimeProvider.System) with { Monitors = GroupStatus() });

    internal ILogger Logger => _logger;

    public Task<IReadOnlyList<EventView>> EventsAsync() => ReadAsync<IReadOnlyList<EventView>>(n => [.. n.Events.Select(EventView.From)]);

    /// <summary>A feed of events from now on (for the dashboard's live stream); dispose the returned handle to stop.</summary>
    public (ChannelReader<MonitorEvent> Reader, IDisposable Subscription) WatchEvents()
    {
        var id = Interlocked.Increment(ref _watcherIds);
        var channel = Channel.CreateBounded<MonitorEvent>(new BoundedChannelOptions(1000) { FullMode = BoundedChannelFullMode.DropOldest });
        _eventWatchers[id] = channel;
        return (channel.Reader, new Unsubscribe(() => _eventWatchers.TryRemove(id, out _)));
    }

    // ------------------------------------------------------------------ servers

    private void OnServerConnected(FrameConnection connection)
    {
        var hello = connection.PeerHello;
        if (hello.Role != PeerRole.Server || hello.From.IsNone)
        {
            return;
        }

        _servers[hello.From] = connection;

        // As soon as the connection starts closing, not once it has finished: under load the close can take tens
        // of milliseconds, and a crashed primary's clients wait for every one of them.
        _ = connection.Closing.ContinueWith(
            closing =>
            {
                // Only the connection the server uses now counts: a replaced one closing is no news.
                if (_servers.TryRemove(new KeyValuePair<NodeAddress, FrameConnection>(hello.From, connection)))
                {
                    LogMessages.ServerConnectionLost(_logger, hello.From.ToString(), closing.Result.Reason.ToString());
                    _loop.Post(() => _node.OnServerConnectionLost(hello.From));
                }
            },
            TaskScheduler.Default);
    }

    private ValueTask HandleServerAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
    {
        var trusted = connection.PeerHello.Role == PeerRole.Server && (connection.IsAuthenticated || _options.ClusterKey.IsEmpty);
        if (!trusted)
        {
            LogMessages.UnexpectedMessage(_logger, message.Type.ToString(), connection.RemoteEndPoint, connection.PeerHello.Role.ToString());
            return ValueTask.CompletedTask;
        }

        // The server must be the one the message speaks for: a server cannot heartbeat for another.
        if (MonitorInbox.SenderOf(message.Type) != MonitorSender.Server || MonitorInbox.ServerOf(message) != connection.PeerHello.From)
        {
            LogMessages.UnexpectedMessage(_logger, message.Type.ToString(), connection.RemoteEndPoint, connection.PeerHello.Role.ToString());
            return ValueTask.CompletedTask;
        }

        if (message.Type == MessageType.Heartbeat)
        {
            Metrics.Heartbeats.Inc();
        }

        Post(default, message);
        return ValueTask.CompletedTask;
    }

    /// <summary>Delivers on the loop through the mapping the simulator uses too (one closure per message, as before).</summary>
    private void Post(ClientRef client, IMessage message) => _loop.Post(() => MonitorInbox.Deliver(_node, client, message));

    // ------------------------------------------------------------------ clients and operators

    private void OnClientConnected(FrameConnection connection)
    {
        _clients[connection.Id] = connection;
        var client = new ClientRef(connection.Id);
        _ = connection.Closed.ContinueWith(
            _ =>
            {
                _clients.TryRemove(connection.Id, out FrameConnection? _);
                _loop.Post(() => _node.OnClientDisconnected(client));
            },
            TaskScheduler.Default);
    }

    private async ValueTask HandleClientAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
    {
        var client = new ClientRef(connection.Id);
        switch (message)
        {
            case AdminRequest { Command: AdminCommand.Status } request:
                var status = await StatusAsync();
                connection.Send(new AdminResponse(request.RequestId, true, string.Empty, Encoding.UTF8.GetBytes(status.ToJson())));
                break;
            case AdminRequest { Command: AdminCommand.Events } request:
                var events = await EventsAsync();
                connection.Send(new AdminResponse(request.RequestId, true, string.Empty, JsonSerializer.SerializeToUtf8Bytes(events, ClusterStatus.Json)));
                break;
            case var _ when MonitorInbox.SenderOf(message.Type) == MonitorSender.Client:
                Post(client, message);
                break;
            default:
                LogMessages.UnexpectedMessage(_logger, message.Type.ToString(), connection.RemoteEndPoint, connection.PeerHello.Role.ToString());
                break;
        }
    }

    // ------------------------------------------------------------------ IMonitorEnvironment (called on the loop)

    public void SendToServer<T>(NodeAddress server, in T message)
        where T : IMessage
    {
        if (_servers.TryGetValue(server, out var connection))
        {
            connection.Send(message);
        }
    }

    public void SendToClient<T>(ClientRef client, in T message)
        where T : IMessage
    {
        if (_clients.TryGetValue(client.Id, out var connection))
        {
            connection.Send(message);
        }
    }

    public void Probe(NodeAddress server)
    {
        var timeout = _options.ProbeTimeout;
        _ = Task.Run(async () =>
        {
            var started = TimeProvider.System.GetTimestamp();
            var result = await PortProbe.ProbeAsync(server, timeout, _stopping.Token);
            LogMessages.ProbeAnswered(_logger, server.ToString(), result.ToString(), TimeProvider.System.GetElapsedTime(started).TotalMilliseconds);
            var outcome = result switch
            {
                PortProbeResult.Refused => ProbeOutcome.Refused,
                PortProbeResult.Accepted => ProbeOutcome.Accepted,
                _ => ProbeOutcome.TimedOut,
            };
            _loop.Post(() => _node.OnProbeResult(server, outcome));
        });
    }

    public void ProposeConfig(long expectedVersion, ClusterConfig next)
    {
        var started = TimeProvider.System.GetTimestamp();
        var coordinator = _coordinator!;
        _ = Task.Run(async () =>
        {
            try
            {
                var result = await coordinator.CompareAndSetAsync(expectedVersion, next, _stopping.Token);
                Metrics.ConfigWriteSeconds.Observe(TimeProvider.System.GetElapsedTime(started).TotalSeconds);
                _loop.Post(() => _node.OnConfigStored(result.Committed, result.Current));
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (NotActiveMonitorException e)
            {
                // Leadership moved while the proposal was in flight: a refusal, answered with the configuration
                // this monitor holds, exactly as a lost compare-and-set; the new active monitor decides from here.
                LogMessages.ProposalRefused(_logger, next.ToString(), e.Message);
                await RefuseAsync(coordinator).ConfigureAwait(false);
            }
            catch (Exception e) when (_options.Coordinator != CoordinatorKind.File)
            {
                // A group member that cannot reach its quorum cannot commit; that is an outage of this member,
                // not a reason to stop it: it must stay up to rejoin. Nothing was committed through it.
                LogMessages.ConfigStoreFailed(_logger, e.Message);
                await RefuseAsync(coordinator).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // Without a durable configuration the monitor cannot promote safely: stop, loudly.
                LogMessages.ConfigStoreFailed(_logger, e.Message);
                _fatal.TrySetResult($"the configuration store failed: {e.Message}");
            }
        });
    }

    /// <summary>Answers a proposal that was not committed with the configuration this monitor holds.</summary>
    private async Task RefuseAsync(IMonitorCoordinator coordinator)
    {
        ClusterConfig? current = null;
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            bounded.CancelAfter(TimeSpan.FromSeconds(1));
            current = await coordinator.LoadAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            // Not even the local copy: the node's own copy is the best answer there is.
        }

        _loop.Post(() => _node.OnConfigStored(false, current ?? _node.Config));
    }

    public void Report(MonitorEvent e)
    {
        switch (e.Kind)
        {
            case MonitorEventKind.Promoted:
                Metrics.Promotions.Inc();
                if (e.ElapsedMs is { } ms)
                {
                    Metrics.PromotionSeconds.Observe(ms / 1000);
                }

                break;
            case MonitorEventKind.PrimaryFailed:
                Metrics.PrimaryFailures.Inc();
                break;
            case MonitorEventKind.MemberDown or MonitorEventKind.MemberSuspected:
                Metrics.FailuresDetected.WithLabels(e.Kind == MonitorEventKind.MemberDown ? "crash" : "timeout").Inc();
                break;
        }

        var member = e.Member.IsNone ? string.Empty : e.Member.ToString();
        var detail = e.ElapsedMs is { } elapsed ? $"{e.Detail} ({elapsed:0.0} ms)" : e.Detail;
        if (e.Kind is MonitorEventKind.PrimaryFailed or MonitorEventKind.MemberDown or MonitorEventKind.NoCandidate or MonitorEventKind.ForcedPromotion or MonitorEventKind.ConfigStoreRejected or MonitorEventKind.SwitchoverFailed or MonitorEventKind.MemberSuspected)
        {
            LogMessages.MonitorWarning(_logger, e.Kind.ToString(), member, detail);
        }
        else
        {
            LogMessages.MonitorEvent(_logger, e.Kind.ToString(), member, detail);
        }

        foreach (var watcher in _eventWatchers.Values)
        {
            watcher.Writer.TryWrite(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_loop is not null)
        {
            await _loop.DisposeAsync();
        }

        if (_heartbeats is not null)
        {
            await _heartbeats.DisposeAsync();
        }

        if (_clientApi is not null)
        {
            await _clientApi.DisposeAsync();
        }

        if (_coordinator is not null)
        {
            await _coordinator.DisposeAsync();
        }

        _stopping.Dispose();
    }

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}

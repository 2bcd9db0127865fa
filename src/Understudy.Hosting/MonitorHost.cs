using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Understudy.Core.Monitor;
using Understudy.Core.Replication;
using Understudy.Protocol;
using Understudy.Storage;
using Understudy.Transport;

namespace Understudy.Hosting;

/// <summary>Where the monitor listens and keeps its configuration, and how it judges servers.</summary>
public sealed record MonitorHostOptions
{
    /// <summary>Servers' heartbeat connections (the original's port 9000).</summary>
    public NodeAddress HeartbeatListen { get; init; } = new("127.0.0.1", 9000);

    /// <summary>Clients and operators (the original's client API port 9001).</summary>
    public NodeAddress ClientListen { get; init; } = new("127.0.0.1", 9001);

    public string DataDirectory { get; init; } = Path.Combine(".understudy", "monitor");

    /// <summary>Dashboard, /cluster, /events, /health, /metrics; port 0 turns HTTP off.</summary>
    public string HttpHost { get; init; } = "127.0.0.1";

    public int HttpPort { get; init; } = 9080;

    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>How long a probe of a silent server's port may take.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromMilliseconds(250);

    public ReadOnlyMemory<byte> ClusterKey { get; init; }

    public MonitorOptions Protocol { get; init; } = new();

    public void Validate()
    {
        foreach (var (address, what) in new[] { (HeartbeatListen, "heartbeat port (--port)"), (ClientListen, "client port (--client-port)") })
        {
            if (address.Port is <= 0 or > 65535)
            {
                throw new ArgumentException($"{what} {address.Port} is not a TCP port (1-65535)");
            }
        }

        if (HeartbeatListen == ClientListen)
        {
            throw new ArgumentException($"the heartbeat and client ports are both {HeartbeatListen.Port}; they must differ");
        }

        OptionChecks.HttpPort(HttpPort);
        OptionChecks.ClusterKey(ClusterKey);

        Protocol.Validate();
    }
}

/// <summary>
/// The monitor process: runs <see cref="MonitorNode"/> on one event loop, with the configuration in a file
/// written atomically, heartbeats from servers on one port and clients and operators on another.
/// </summary>
public sealed class MonitorHost : IMonitorEnvironment, IAsyncDisposable
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
    private FileConfigurationStore _store = null!;
    private MonitorNode _node = null!;
    private EventLoop _loop = null!;
    private FrameServer? _heartbeats;
    private FrameServer? _clientApi;
    private long _watcherIds;

    private MonitorHost(MonitorHostOptions options, ILoggerFactory loggers)
    {
        _options = options;
        _logger = loggers.CreateLogger("Understudy.Monitor");
        Metrics = new MonitorMetrics();
        Incarnation = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) | 1;
        _connectionOptions = new FrameConnectionOptions
        {
            Role = PeerRole.Monitor,
            LocalAddress = options.HeartbeatListen,
            Incarnation = Incarnation,
            ClusterKey = options.ClusterKey,
            UnauthenticatedRoles = [PeerRole.Client, PeerRole.Admin],
            Logger = loggers.CreateLogger("Understudy.Transport"),
        };
    }

    public ulong Incarnation { get; }

    public MonitorMetrics Metrics { get; }

    public MonitorHostOptions Options => _options;

    public NodeAddress HeartbeatAddress => _heartbeats?.LocalAddress ?? _options.HeartbeatListen;

    public NodeAddress ClientAddress => _clientApi?.LocalAddress ?? _options.ClientListen;

    /// <summary>Completes with a reason when the monitor must stop (its configuration store failed).</summary>
    public Task<string> Fatal => _fatal.Task;

    public static async Task<MonitorHost> StartAsync(MonitorHostOptions options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        options.Validate();
        return await HostStart.OrDisposeAsync(new MonitorHost(options, loggers), h => h.StartCoreAsync(cancellationToken));
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        _store = FileConfigurationStore.Open(_options.DataDirectory, _logger);
        var stored = await _store.LoadAsync(cancellationToken);
        _loop = new EventLoop(() => { }, e => LogMessages.LoopError(_logger, e));
        _node = new MonitorNode(_options.Protocol, stored, this, TimeProvider.System, Incarnation);
        _heartbeats = await FrameServer.StartAsync(_transport, _options.HeartbeatListen, _connectionOptions, HandleServerAsync, OnServerConnected, cancellationToken);
        _clientApi = await FrameServer.StartAsync(_transport, _options.ClientListen, _connectionOptions, HandleClientAsync, OnClientConnected, cancellationToken);
        LogMessages.MonitorStarting(_logger, _heartbeats.LocalAddress.ToString(), _clientApi.LocalAddress.ToString(), stored.ToString());

        // Run the crash-detection path once now (a probe of our own port), so the first real crash is not
        // also the first time that code is compiled: on a small machine that cost tens of milliseconds.
        _ = PortProbe.ProbeAsync(_clientApi.LocalAddress, _options.ProbeTimeout, _stopping.Token).AsTask();
        _loop.Start(() => _node.Tick(), _options.TickInterval);
    }

    /// <summary>Reads the monitor's state on its loop.</summary>
    public Task<T> ReadAsync<T>(Func<MonitorNode, T> read) => _loop.InvokeAsync(() => read(_node));

    public Task<ClusterStatus> StatusAsync() => ReadAsync(n => ClusterStatus.From(n, TimeProvider.System));

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
        _ = Task.Run(async () =>
        {
            try
            {
                var result = await _store.CompareAndSetAsync(expectedVersion, next, _stopping.Token);
                Metrics.ConfigWriteSeconds.Observe(TimeProvider.System.GetElapsedTime(started).TotalSeconds);
                _loop.Post(() => _node.OnConfigStored(result.Committed, result.Current));
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                // Without a durable configuration the monitor cannot promote safely: stop, loudly.
                LogMessages.ConfigStoreFailed(_logger, e.Message);
                _fatal.TrySetResult($"the configuration store failed: {e.Message}");
            }
        });
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

        _store?.Dispose();
        _stopping.Dispose();
    }

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}

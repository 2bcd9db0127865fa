using Microsoft.Extensions.Logging;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.Hosting;

/// <summary>
/// A server's links to every monitor of the group: one persistent heartbeat connection each, with the reconnect
/// backoff of <see cref="ReconnectingPeer"/>. Heartbeats go to all of them, so every monitor tracks the server's health
/// and a follower can take over knowing it. Everything else a server tells "the monitor" (in-sync change requests,
/// step-down results) goes to the monitor whose last <see cref="HeartbeatAck"/> said it was the active one; until one
/// has, such messages are held (the newest <see cref="MaxHeld"/>) and sent when it does, because only the active
/// monitor acts on them and a step-down result is sent only once.
/// Thread-safe: sends come from the server's loop, acknowledgements from the connections' readers.
/// </summary>
internal sealed class MonitorLinks : IAsyncDisposable
{
    /// <summary>How many monitor-bound messages wait for an active monitor at most; older ones are dropped (the core resends what matters).</summary>
    public const int MaxHeld = 64;

    /// <summary>The longest wait between two attempts to reach one monitor (declared before its user: static fields initialise in order).</summary>
    public static readonly TimeSpan MonitorMaxBackoff = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// The reconnect backoff for monitor links: the usual full-jitter formula, with a ceiling far below the 5 s
    /// default. A restarted monitor that the servers reach only seconds later can be elected active meanwhile; it
    /// then hears no heartbeat from the primary, cannot renew its lease (writes stall), and after its grace judges
    /// the healthy primary failed and promotes another (seen in <c>bench failover --fault kill-monitor</c>). A
    /// server has at most five monitor links and a refused connect on them costs microseconds, so retrying each
    /// within <see cref="MonitorMaxBackoff"/> is cheap; the ceiling is under the upper Raft election timeout
    /// (300 ms) a restarted monitor waits before it joins its group, so servers are usually back before it can lead.
    /// </summary>
    public static readonly ReconnectOptions MonitorReconnect = new()
    {
        InitialBackoff = TimeSpan.FromMilliseconds(20),
        MaxBackoff = MonitorMaxBackoff,
    };

    private readonly ReconnectingPeer[] _peers;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly Queue<IMessage> _held = new();
    private ReconnectingPeer? _active;
    private long _activeTerm = long.MinValue;

    public MonitorLinks(ITransport transport, IReadOnlyList<NodeAddress> monitors, FrameConnectionOptions options, FrameHandler handler, ILogger logger, ReconnectOptions? reconnect = null)
    {
        reconnect ??= MonitorReconnect;
        _logger = logger;
        _peers = new ReconnectingPeer[monitors.Count];
        for (var i = 0; i < monitors.Count; i++)
        {
            var address = monitors[i];
            ReconnectingPeer? peer = null;
            peer = new ReconnectingPeer(transport, address, options, (connection, message, cancellationToken) =>
            {
                if (message is HeartbeatAck ack)
                {
                    OnAck(peer!, ack);
                }

                return handler(connection, message, cancellationToken);
            }, reconnect);
            peer.Connected += _ => LogMessages.MonitorConnected(_logger, address.ToString());
            peer.Disconnected += closed => OnDisconnected(peer, closed);
            _peers[i] = peer;
        }
    }

    /// <summary>The heartbeat addresses, in the order given.</summary>
    public IEnumerable<NodeAddress> Addresses => _peers.Select(p => p.Endpoint);

    /// <summary>The monitor whose last acknowledgement came from the active one, or none while unknown.</summary>
    public NodeAddress Active
    {
        get
        {
            lock (_gate)
            {
                return _active?.Endpoint ?? NodeAddress.None;
            }
        }
    }

    /// <summary>How many monitor-bound messages wait for an active monitor.</summary>
    public int HeldCount
    {
        get
        {
            lock (_gate)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>How many monitors a connection is up to.</summary>
    public int ConnectedCount => _peers.Count(p => p.IsConnected);

    public void Start()
    {
        foreach (var peer in _peers)
        {
            peer.Start();
        }
    }

    /// <summary>Heartbeats to every monitor; anything else to the active one, or held until one is known.</summary>
    public void Send<T>(in T message)
        where T : IMessage
    {
        if (message is Heartbeat)
        {
            foreach (var peer in _peers)
            {
                peer.Send(message);
            }

            return;
        }

        lock (_gate)
        {
            if (_active is { } active && active.Send(message))
            {
                return;
            }

            if (_held.Count == MaxHeld)
            {
                _held.Dequeue();
            }

            _held.Enqueue(message);
        }
    }

    /// <summary>
    /// An acknowledgement from a monitor: one from the active monitor of a term at least as new as the last one seen
    /// makes its link the route for monitor-bound messages. A monitor that steps down says so in its next acks
    /// (<c>FromActive</c> false), and then nothing is routed to it until another (or it again) acks as active.
    /// </summary>
    private void OnAck(ReconnectingPeer peer, HeartbeatAck ack)
    {
        var fromActive = ack.FromActive;
        var term = ack.MonitorTerm;
        lock (_gate)
        {
            if (fromActive && term >= _activeTerm)
            {
                var changed = !ReferenceEquals(_active, peer);
                _active = peer;
                _activeTerm = term;
                if (changed)
                {
                    LogMessages.ActiveMonitor(_logger, peer.Endpoint.ToString(), term);
                }

                while (_held.Count > 0 && SendBoxed(peer, _held.Peek()))
                {
                    _held.Dequeue();
                }
            }
            else if (!fromActive && ReferenceEquals(_active, peer))
            {
                _active = null;
            }
        }
    }

    private void OnDisconnected(ReconnectingPeer peer, ConnectionClosed closed)
    {
        LogMessages.MonitorUnreachable(_logger, peer.Endpoint.ToString(), closed.ToString());
        lock (_gate)
        {
            if (ReferenceEquals(_active, peer))
            {
                _active = null;
            }
        }
    }

    private static bool SendBoxed(ReconnectingPeer peer, IMessage message) => peer.Send(message);

    public async ValueTask DisposeAsync()
    {
        foreach (var peer in _peers)
        {
            await peer.DisposeAsync().ConfigureAwait(false);
        }
    }
}

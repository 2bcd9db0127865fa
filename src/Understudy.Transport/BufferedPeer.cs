using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// A <see cref="ReconnectingPeer"/> that holds messages while it connects and sends them, in order, the moment
/// the connection is up. A server promoted a millisecond ago, or a client switching to a new primary, would
/// otherwise lose its first messages to a connection still being made and wait a whole resend timeout.
/// What is buffered is bounded (oldest dropped) and forgotten when a connection attempt fails: the protocol
/// above resends what matters. A buffered message is kept as its encoded bytes, so, as with
/// <see cref="FrameConnection.Send{T}"/>, nothing of the caller's memory is kept once a send returns.
/// </summary>
public sealed class BufferedPeer : IAsyncDisposable
{
    private readonly ReconnectingPeer _peer;
    private readonly Lock _lock = new();
    private readonly Queue<FormattedMessage> _buffer = new();
    private readonly int _maxBuffered;
    private readonly bool _sendNow;

    // Guarded by _lock: the connection holding messages of SendHeld that FlushHeld has not written yet.
    private FrameConnection? _holding;

    /// <summary>
    /// With <paramref name="sendNow"/>, messages go through <see cref="FrameConnection.SendNow{T}"/>: for a peer that
    /// is sent one small message at a time and waits for its answer (a client's requests), not a stream of frames.
    /// </summary>
    public BufferedPeer(ITransport transport, NodeAddress endpoint, FrameConnectionOptions options, FrameHandler handler, ReconnectOptions? reconnect = null, int maxBuffered = 4096, bool sendNow = false)
    {
        _maxBuffered = maxBuffered;
        _sendNow = sendNow;
        _peer = new ReconnectingPeer(transport, endpoint, options, handler, reconnect);
        _peer.Connected += connection =>
        {
            lock (_lock)
            {
                while (_buffer.TryDequeue(out var message))
                {
                    connection.Send(message);
                }
            }

            Connected?.Invoke(connection);
        };
        _peer.Disconnected += closed =>
        {
            lock (_lock)
            {
                _buffer.Clear();
            }

            Disconnected?.Invoke(closed);
        };
    }

    public NodeAddress Endpoint => _peer.Endpoint;

    public bool IsConnected => _peer.IsConnected;

    /// <summary>Raised after the buffered messages went out on the new connection.</summary>
    public event Action<FrameConnection>? Connected;

    public event Action<ConnectionClosed>? Disconnected;

    public void Start() => _peer.Start();

    /// <summary>Sends now if connected, else buffers until the connection is up. Thread-safe, never blocks.</summary>
    public void Send<T>(in T message)
        where T : IMessage => SendOn(in message, _sendNow);

    /// <summary>
    /// As <see cref="Send{T}"/>, through <see cref="FrameConnection.SendNow{T}"/> whatever the peer was made with: for
    /// one small message someone waits for on a connection that otherwise carries a stream (a backup's acknowledgement).
    /// </summary>
    public void SendNow<T>(in T message)
        where T : IMessage => SendOn(in message, now: true);

    /// <summary>
    /// As <see cref="Send{T}"/>, through <see cref="FrameConnection.SendHeld{T}"/>: the message waits, with any others
    /// held, until <see cref="FlushHeld"/> writes them together. For a caller that sends several in one go and then flushes.
    /// </summary>
    public void SendHeld<T>(in T message)
        where T : IMessage => SendOn(in message, now: true, held: true);

    /// <summary>Writes the messages <see cref="SendHeld{T}"/> holds on the connection, if any. Thread-safe.</summary>
    public void FlushHeld()
    {
        FrameConnection? holding;
        lock (_lock)
        {
            holding = _holding;
            _holding = null;
        }

        holding?.FlushHeld();
    }

    private void SendOn<T>(in T message, bool now, bool held = false)
        where T : IMessage
    {
        lock (_lock)
        {
            // Keep order: while older messages wait, newer ones queue behind them.
            if (_buffer.Count == 0 && (held ? SendHeldLocked(in message) : now ? _peer.SendNow(in message) : _peer.Send(in message)))
            {
                return;
            }

            // A copy of its bytes, not the message: a sender may reuse a message's memory once Send returns (a
            // catch-up frame's buffer is read into again for the next frame), as a connection's Send allows.
            _buffer.Enqueue(FormattedMessage.Of(in message));
            while (_buffer.Count > _maxBuffered)
            {
                _buffer.Dequeue();
            }

            if (_peer.Connection is { IsClosing: false } connection)
            {
                while (_buffer.TryDequeue(out var queued))
                {
                    connection.Send(queued);
                }
            }
        }
    }

    private bool SendHeldLocked<T>(in T message)
        where T : IMessage
    {
        if (_peer.Connection is not { } connection || !connection.SendHeld(in message, out var mustFlush))
        {
            return false;
        }

        if (mustFlush)
        {
            // A connection that replaced one still holding frames: the old one's close writes or drops them.
            _holding = connection;
        }

        return true;
    }

    public ValueTask DisposeAsync() => _peer.DisposeAsync();
}

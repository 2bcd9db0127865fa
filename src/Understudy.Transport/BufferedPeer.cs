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

    private void SendOn<T>(in T message, bool now)
        where T : IMessage
    {
        lock (_lock)
        {
            // Keep order: while older messages wait, newer ones queue behind them.
            if (_buffer.Count == 0 && (now ? _peer.SendNow(in message) : _peer.Send(in message)))
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

    public ValueTask DisposeAsync() => _peer.DisposeAsync();
}

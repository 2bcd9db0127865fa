using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// Listens on an address and serves every connection as a <see cref="FrameConnection"/>: each accepted
/// connection does its handshake on its own task, is handed to the owner's callback, and then delivers
/// messages to the handler. A connection that misbehaves is closed alone; the others and the accept loop
/// carry on. Disposing stops accepting and closes every connection.
/// </summary>
public sealed class FrameServer : IAsyncDisposable
{
    private readonly IConnectionListener _listener;
    private readonly FrameConnectionOptions _options;
    private readonly FrameHandler _handler;
    private readonly Action<FrameConnection> _onConnected;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, FrameConnection> _connections = new();
    private readonly ConcurrentDictionary<long, Task> _serving = new();
    private readonly Task _accepting;
    private long _nextServing;
    private int _disposed;

    private FrameServer(IConnectionListener listener, FrameConnectionOptions options, FrameHandler handler, Action<FrameConnection> onConnected)
    {
        _listener = listener;
        _options = options;
        _handler = handler;
        _onConnected = onConnected;
        _logger = options.Logger;
        _accepting = Task.Run(AcceptLoopAsync, CancellationToken.None);
    }

    /// <summary>The address listened on, with the real port when port 0 was asked for.</summary>
    public NodeAddress LocalAddress => _listener.LocalAddress;

    /// <summary>The connections open now (handshake done, not yet closed).</summary>
    public ICollection<FrameConnection> Connections => _connections.Values;

    /// <summary>
    /// Starts listening on <paramref name="endpoint"/>. <paramref name="onConnected"/> is called once per
    /// connection after its handshake and before its first message reaches <paramref name="handler"/>
    /// (so the owner can register it, keyed by <see cref="FrameConnection.Id"/>, and watch
    /// <see cref="FrameConnection.Closed"/>). It runs on a pool thread, possibly for two connections at once:
    /// hosts with an event loop post to it. Throws <see cref="TransportException"/> when the port is taken.
    /// </summary>
    public static async ValueTask<FrameServer> StartAsync(ITransport transport, NodeAddress endpoint, FrameConnectionOptions options, FrameHandler handler, Action<FrameConnection> onConnected, CancellationToken cancellationToken)
    {
        options.Validate();
        var listener = await transport.ListenAsync(endpoint, cancellationToken).ConfigureAwait(false);
        LogMessages.Listening(options.Logger, listener.LocalAddress);
        return new FrameServer(listener, options, handler, onConnected);
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            ITransportConnection? raw;
            try
            {
                raw = await _listener.AcceptAsync(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Out of file descriptors, say: log once per failure and keep listening, a little later.
                LogMessages.AcceptFailed(_logger, LocalAddress, e.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            if (raw is null)
            {
                return;
            }

            var key = Interlocked.Increment(ref _nextServing);
            _serving[key] = ServeAsync(raw, key);
        }
    }

    private async Task ServeAsync(ITransportConnection raw, long key)
    {
        // Off the accept loop: a peer that is slow to say Hello must not hold up the next one.
        await Task.Yield();
        try
        {
            FrameConnection connection;
            try
            {
                connection = await FrameConnection.AcceptAsync(raw, _options, _handler, _stopping.Token).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Refused or broken during the handshake: the connection logged why and closed itself.
                return;
            }

            _connections[connection.Id] = connection;
            if (_stopping.IsCancellationRequested)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                try
                {
                    _onConnected(connection);
                    connection.StartReading();
                }
                catch (Exception e)
                {
                    LogMessages.OnConnectedFailed(_logger, e, connection.Id, connection);
                    connection.Close();
                }
            }

            await connection.Closed.ConfigureAwait(false);
            _connections.TryRemove(connection.Id, out _);
        }
        finally
        {
            _serving.TryRemove(key, out _);
        }
    }

    /// <summary>Stops accepting, closes every connection and waits until they have ended.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _listener.DisposeAsync().ConfigureAwait(false);
        await _accepting.ConfigureAwait(false);
        foreach (var connection in _connections.Values)
        {
            connection.Close();
        }

        await Task.WhenAll(_serving.Values).ConfigureAwait(false);
        _stopping.Dispose();
    }
}

using Microsoft.Extensions.Logging;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.Client;

/// <summary>
/// A client's one connection to the monitor group: to any reachable monitor of the list, since every monitor of a
/// group answers configuration queries and pushes primary changes to its subscribers. It connects to the first; when an
/// attempt fails or the connection ends it moves to the next, waiting a jittered exponential backoff ("full jitter":
/// uniform between zero and min(max, initial·2ⁿ), n the failures in a row), so a dead monitor costs one attempt and a
/// group that is down entirely is not hammered. <see cref="Send{T}"/> drops messages while disconnected (the session
/// re-queries on <see cref="Connected"/>). Events are raised on a pool thread in order; subscribe before <see cref="Start"/>.
/// </summary>
internal sealed class MonitorRotation : IAsyncDisposable
{
    private readonly ITransport _transport;
    private readonly IReadOnlyList<NodeAddress> _monitors;
    private readonly FrameConnectionOptions _options;
    private readonly FrameHandler _handler;
    private readonly ReconnectOptions _reconnect;
    private readonly ILogger _logger;
    private readonly ReconnectLoop _loop;
    private FrameConnection? _current;
    private int _currentIndex = -1;
    private int _index;

    public MonitorRotation(ITransport transport, IReadOnlyList<NodeAddress> monitors, FrameConnectionOptions options, FrameHandler handler, ReconnectOptions reconnect, ILogger logger)
    {
        if (monitors.Count == 0)
        {
            throw new ArgumentException("no monitor address: give at least one", nameof(monitors));
        }

        _transport = transport;
        _monitors = monitors;
        _options = options;
        _handler = handler;
        _reconnect = reconnect;
        _logger = logger;
        _loop = new ReconnectLoop(reconnect, () => Volatile.Read(ref _current));
    }

    /// <summary>A connection is up to this monitor (its client address, as listed).</summary>
    public event Action<NodeAddress>? Connected;

    /// <summary>The connection to a monitor ended, or an attempt failed; the rotation moves on to the next.</summary>
    public event Action<NodeAddress, ConnectionClosed>? Disconnected;

    /// <summary>The monitor the live connection goes to, or none while disconnected.</summary>
    public NodeAddress Current => Volatile.Read(ref _current) is { IsClosing: false } && Volatile.Read(ref _currentIndex) is >= 0 and var i ? _monitors[i] : NodeAddress.None;

    /// <summary>The client addresses, in the order they are tried.</summary>
    public IReadOnlyList<NodeAddress> Monitors => _monitors;

    public void Start() => _loop.Start(RunAsync);

    /// <summary>Queues a message on the live connection; false (dropped) while disconnected. Thread-safe, never blocks.</summary>
    public bool Send<T>(in T message)
        where T : IMessage => Volatile.Read(ref _current) is { } connection && connection.Send(in message);

    /// <summary>
    /// Gives up on <paramref name="monitor"/> if the live connection goes to it: closes it, so the rotation moves on to
    /// the next. For a monitor that holds its connection open but does not answer (a SIGSTOPped or hung process),
    /// which the connection alone would never show.
    /// </summary>
    public void Abandon(NodeAddress monitor)
    {
        if (!monitor.IsNone && Current == monitor && Volatile.Read(ref _current) is { } connection)
        {
            connection.Close();
        }
    }

    private async Task RunAsync()
    {
        var token = _loop.Stopping;
        TransportError? reported = null;
        while (!token.IsCancellationRequested)
        {
            var address = _monitors[_index];
            var started = _loop.AttemptStarted();
            FrameConnection? connection;
            ConnectionClosed failure;
            try
            {
                (connection, failure) = await ConnectAttempt.RunAsync(attempt => FrameConnection.ConnectAsync(_transport, address, _options, _handler, attempt), _reconnect.ConnectTimeout, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }

            if (connection is not null)
            {
                Volatile.Write(ref _currentIndex, _index);
                Volatile.Write(ref _current, connection);
                if (token.IsCancellationRequested)
                {
                    // Disposed while connecting: DisposeAsync may have missed this connection.
                    await connection.DisposeAsync().ConfigureAwait(false);
                    return;
                }

                reported = null;
                Raise(() => Connected?.Invoke(address));
                failure = await connection.Closed.ConfigureAwait(false);
                Volatile.Write(ref _current, null);
                await connection.DisposeAsync().ConfigureAwait(false);
                if (token.IsCancellationRequested)
                {
                    return;
                }

                _loop.Ended(started);
                reported = failure.Reason;
                Raise(() => Disconnected?.Invoke(address, failure));
            }
            else if (reported != failure.Reason)
            {
                // Once per change of reason, not once per attempt: a group that is down stays one line.
                reported = failure.Reason;
                Raise(() => Disconnected?.Invoke(address, failure));
            }

            _index = (_index + 1) % _monitors.Count;
            if (!await _loop.WaitBeforeRetryAsync().ConfigureAwait(false))
            {
                return;
            }
        }
    }

    /// <summary>An owner's handler that throws is logged and must not stop the rotation.</summary>
    private void Raise(Action raise)
    {
        try
        {
            raise();
        }
        catch (Exception e)
        {
            ClientLog.LoopError(_logger, e);
        }
    }

    /// <summary>Stops rotating, closes the connection and waits for both; raises no more events.</summary>
    public ValueTask DisposeAsync() => _loop.DisposeAsync();
}

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
/// A follower monitor names the active one; <see cref="MoveTowardsActive"/> goes there at once, the rotation's order
/// resuming from it; when that monitor has just failed, the follower is asked again once its wait is over.
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

    /// <summary>Where <see cref="MoveTowardsActive"/> asked to go next (an index of the list), or -1.</summary>
    private int _movingTo = -1;

    /// <summary>
    /// Guards <see cref="_refusedAt"/> (written by the rotation, read by the connection's handler) and the hint
    /// waiting to be asked again (<see cref="_deferredOn"/>, <see cref="_hintTimer"/>).
    /// </summary>
    private readonly Lock _gate = new();

    /// <summary>
    /// Per monitor of the list, when an attempt to connect to it last failed (the options' clock), or
    /// <see cref="long.MinValue"/>: a hint is not followed to a monitor that failed within the last
    /// <see cref="ReconnectOptions.MaxBackoff"/>.
    /// </summary>
    private readonly long[] _refusedAt;

    /// <summary>
    /// The connection a hint came on that could not be followed because every monitor it led to had just failed: once
    /// their wait is over, and if that connection is still the live one, <see cref="AskAgain"/> is raised so the owner
    /// asks that monitor again. Without this a client could stay at a follower for good, since a follower names the
    /// active monitor only when it changes. The monitor is asked rather than the old hint followed: by then the
    /// hint may be stale (the monitor itself may have become the active one, which names nobody).
    /// </summary>
    private FrameConnection? _deferredOn;

    private ITimer? _hintTimer;

    private bool _disposed;

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
        _refusedAt = new long[monitors.Count];
        Array.Fill(_refusedAt, long.MinValue);
    }

    /// <summary>A connection is up to this monitor (its client address, as listed).</summary>
    public event Action<NodeAddress>? Connected;

    /// <summary>The connection to a monitor ended, or an attempt failed; the rotation moves on to the next.</summary>
    public event Action<NodeAddress, ConnectionClosed>? Disconnected;

    /// <summary>The connection to a monitor was closed to move to the active one (the second address); the next attempt goes there.</summary>
    public event Action<NodeAddress, NodeAddress>? Moved;

    /// <summary>
    /// A hint could not be followed for a while (it led only to monitors that had just failed) and that wait is over:
    /// the owner should ask the connected monitor (given) again who is active.
    /// </summary>
    public event Action<NodeAddress>? AskAgain;

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

    /// <summary>
    /// Moves the connection towards the active monitor, which the follower it goes to named: to
    /// <paramref name="active"/> when it is in the list, otherwise (the name is a server-facing address this client
    /// cannot map to one of its client addresses) to the next monitor of the list after the current one that has not
    /// just failed, which answers with no name if it is the active one. The live connection is closed and the next
    /// attempt goes there without the backoff. Ignored while disconnected and for the monitor already connected to. A
    /// monitor an attempt failed to reach within the last <see cref="ReconnectOptions.MaxBackoff"/> is not moved to (a
    /// follower can name an active monitor that just died, until the group elects another); when that leaves nowhere
    /// to go, <see cref="AskAgain"/> is raised once that wait is over, as long as the connection the hint came on is
    /// still up and no later hint came. Thread-safe; true if the move started.
    /// </summary>
    public bool MoveTowardsActive(NodeAddress active)
    {
        var current = Volatile.Read(ref _currentIndex);
        if (Volatile.Read(ref _current) is not { IsClosing: false } on || current < 0)
        {
            return false;
        }

        var listed = IndexOf(active);
        if (listed == current || _monitors.Count == 1)
        {
            return false;
        }

        var now = _reconnect.TimeProvider.GetTimestamp();
        var wait = _reconnect.MaxBackoff;
        int target = -1;
        lock (_gate)
        {
            if (_disposed)
            {
                return false;
            }

            // A listed name is the only place to go; an unlisted one sends the client along the list, skipping
            // monitors that just failed (moving to one would only fail again and leave the client where it started).
            var steps = listed >= 0 ? 1 : _monitors.Count - 1;
            for (var step = 1; step <= steps && target < 0; step++)
            {
                var index = listed >= 0 ? listed : (current + step) % _monitors.Count;
                var since = _refusedAt[index] == long.MinValue ? TimeSpan.MaxValue : _reconnect.TimeProvider.GetElapsedTime(_refusedAt[index], now);
                if (since >= _reconnect.MaxBackoff)
                {
                    target = index;
                }
                else if (_reconnect.MaxBackoff - since < wait)
                {
                    wait = _reconnect.MaxBackoff - since;
                }
            }

            _hintTimer?.Dispose();
            _hintTimer = null;
            if (target < 0)
            {
                _deferredOn = on;
                _hintTimer = _reconnect.TimeProvider.CreateTimer(static state => ((MonitorRotation)state!).OnHintWaitOver(), this, wait, Timeout.InfiniteTimeSpan);
                return false;
            }

            _deferredOn = null;
        }

        Volatile.Write(ref _movingTo, target);
        on.Close();
        return true;
    }

    /// <summary>The wait on a hint with nowhere to go is over: have the owner ask again, if still on the connection it came on.</summary>
    private void OnHintWaitOver()
    {
        FrameConnection? on;
        lock (_gate)
        {
            on = _deferredOn;
            _deferredOn = null;
        }

        var monitor = Current;
        if (on is not null && on == Volatile.Read(ref _current) && !monitor.IsNone)
        {
            Raise(() => AskAgain?.Invoke(monitor));
        }
    }

    private int IndexOf(NodeAddress monitor)
    {
        for (var i = 0; i < _monitors.Count; i++)
        {
            if (_monitors[i] == monitor)
            {
                return i;
            }
        }

        return -1;
    }

    private async Task RunAsync()
    {
        var token = _loop.Stopping;
        TransportError? reported = null;
        long lastMove = 0;
        var movesInTour = 0;
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
                if (Interlocked.Exchange(ref _movingTo, -1) is >= 0 and var target)
                {
                    // Sent on by a follower towards the active monitor: not a failure, so no wait, for up to one tour of
                    // the list; moves beyond that in quick succession (followers with stale views naming a monitor that
                    // is no longer active) wait the usual backoff.
                    _index = target;
                    Raise(() => Moved?.Invoke(address, _monitors[target]));
                    movesInTour = lastMove != 0 && _reconnect.TimeProvider.GetElapsedTime(lastMove) < _reconnect.MaxBackoff ? movesInTour + 1 : 1;
                    lastMove = _reconnect.TimeProvider.GetTimestamp();
                    if (movesInTour >= _monitors.Count && !await _loop.WaitBeforeRetryAsync().ConfigureAwait(false))
                    {
                        return;
                    }

                    continue;
                }

                reported = failure.Reason;
                Raise(() => Disconnected?.Invoke(address, failure));
            }
            else
            {
                lock (_gate)
                {
                    _refusedAt[_index] = _reconnect.TimeProvider.GetTimestamp();
                }

                if (reported != failure.Reason)
                {
                    // Once per change of reason, not once per attempt: a group that is down stays one line.
                    reported = failure.Reason;
                    Raise(() => Disconnected?.Invoke(address, failure));
                }
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
    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
            _hintTimer?.Dispose();
            _hintTimer = null;
            _deferredOn = null;
        }

        return _loop.DisposeAsync();
    }
}

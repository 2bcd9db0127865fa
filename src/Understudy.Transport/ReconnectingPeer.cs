using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>Timing of a <see cref="ReconnectingPeer"/>.</summary>
public sealed class ReconnectOptions
{
    /// <summary>The backoff ceiling for the first retry; it doubles per failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest wait between attempts.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long one attempt (connect and handshake) may take before it counts as timed out.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Draws the jitter; a seeded one makes the schedule repeatable in tests. Null: a shared one.</summary>
    public Random? Random { get; init; }

    /// <summary>Times the waits between attempts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The wait before retry number <paramref name="failures"/> + 1, full jitter: uniform in [0, min(max, initial·2ⁿ)].</summary>
    public TimeSpan Backoff(int failures, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var ceiling = InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures, 30));
        ceiling = Math.Min(ceiling, MaxBackoff.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(random.NextDouble() * ceiling);
    }
}

/// <summary>
/// Keeps one outgoing <see cref="FrameConnection"/> to an address alive: connects, and whenever that
/// fails or the connection ends, tries again after a jittered exponential backoff ("full jitter": a
/// uniform wait between zero and min(max, initial·2ⁿ)). <see cref="Send{T}"/> drops messages while
/// disconnected (the protocol above resends). <see cref="Connected"/> and <see cref="Disconnected"/>
/// report each change of state, raised on a pool thread in the order they happen; subscribe before
/// <see cref="Start"/>. The log gets one line per change, not one per attempt.
/// </summary>
public sealed class ReconnectingPeer : IAsyncDisposable
{
    private readonly ITransport _transport;
    private readonly FrameConnectionOptions _options;
    private readonly FrameHandler _handler;
    private readonly ReconnectOptions _reconnect;
    private readonly ReconnectLoop _loop;
    private FrameConnection? _current;
    private int _started;

    public ReconnectingPeer(ITransport transport, NodeAddress endpoint, FrameConnectionOptions options, FrameHandler handler, ReconnectOptions? reconnect = null)
    {
        options.Validate();
        _transport = transport;
        Endpoint = endpoint;
        _options = options;
        _handler = handler;
        _reconnect = reconnect ?? new ReconnectOptions();
        _loop = new ReconnectLoop(_reconnect, () => Volatile.Read(ref _current));
    }

    /// <summary>A connection is up (and past its handshake): sends go through it from now on.</summary>
    public event Action<FrameConnection>? Connected;

    /// <summary>
    /// The connection went away, or an attempt failed for a new reason (refused, reset, timed out, ...).
    /// Raised once per change, not on every failed retry.
    /// </summary>
    public event Action<ConnectionClosed>? Disconnected;

    /// <summary>Where this peer connects.</summary>
    public NodeAddress Endpoint { get; }

    /// <summary>The live connection, or null while disconnected.</summary>
    public FrameConnection? Connection => Volatile.Read(ref _current);

    /// <summary>True while a connection is up.</summary>
    public bool IsConnected => Connection is { IsClosing: false };

    /// <summary>Starts connecting (once).</summary>
    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) == 0)
        {
            _loop.Start(RunAsync);
        }
    }

    /// <summary>Queues a message on the live connection; false (dropped) while disconnected. Thread-safe, never blocks.</summary>
    public bool Send<T>(in T message)
        where T : IMessage
    {
        var connection = Volatile.Read(ref _current);
        return connection is not null && connection.Send(in message);
    }

    /// <summary>As <see cref="Send{T}"/>, through <see cref="FrameConnection.SendNow{T}"/>.</summary>
    public bool SendNow<T>(in T message)
        where T : IMessage
    {
        var connection = Volatile.Read(ref _current);
        return connection is not null && connection.SendNow(in message);
    }

    private async Task RunAsync()
    {
        var token = _loop.Stopping;
        TransportError? reported = null;
        while (!token.IsCancellationRequested)
        {
            var started = _loop.AttemptStarted();
            FrameConnection? connection;
            ConnectionClosed failure;
            try
            {
                (connection, failure) = await ConnectAttempt.RunAsync(attempt => FrameConnection.ConnectWithoutReadingAsync(_transport, Endpoint, _options, _handler, attempt), _reconnect.ConnectTimeout, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }

            if (connection is not null)
            {
                Volatile.Write(ref _current, connection);
                if (token.IsCancellationRequested)
                {
                    // Disposed while connecting: DisposeAsync may have missed this connection.
                    await connection.DisposeAsync().ConfigureAwait(false);
                    return;
                }

                reported = null;
                LogMessages.PeerConnected(_options.Logger, Endpoint, connection);
                Raise(Connected, connection);

                // Only now, so the owner has seen Connected before the first message reaches its handler.
                connection.StartReading();

                failure = await connection.Closed.ConfigureAwait(false);
                Volatile.Write(ref _current, null);
                if (token.IsCancellationRequested)
                {
                    return;
                }

                LogMessages.PeerLost(_options.Logger, Endpoint, failure.Reason, failure.Detail, _reconnect.MaxBackoff);
                reported = failure.Reason;
                Raise(Disconnected, failure);
                _loop.Ended(started);
            }
            else if (reported != failure.Reason)
            {
                LogMessages.PeerWaiting(_options.Logger, Endpoint, failure.Reason, failure.Detail, _reconnect.MaxBackoff);
                reported = failure.Reason;
                Raise(Disconnected, failure);
            }

            if (!await _loop.WaitBeforeRetryAsync().ConfigureAwait(false))
            {
                return;
            }
        }
    }

    /// <summary>Raises an event; an owner's handler that throws is logged and must not stop the reconnecting.</summary>
    private void Raise<T>(Action<T>? handlers, T argument)
    {
        try
        {
            handlers?.Invoke(argument);
        }
        catch (Exception e)
        {
            LogMessages.PeerEventFailed(_options.Logger, e, Endpoint);
        }
    }

    /// <summary>Stops reconnecting, closes the connection and waits for both; raises no more events.</summary>
    public ValueTask DisposeAsync() => _loop.DisposeAsync();
}

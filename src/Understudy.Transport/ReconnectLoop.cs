namespace Understudy.Transport;

/// <summary>
/// The life of one reconnect loop (a <see cref="ReconnectingPeer"/>, a client's rotation over its monitors): its
/// start and stop, and its waits between attempts. The waits are full-jitter backoff on the failures in a row: uniform
/// between zero and min(max, initial·2ⁿ). A connection that lived at least <see cref="ReconnectOptions.MaxBackoff"/>
/// starts the count again; one that dies at once does not, so a peer that accepts and drops us at once is not hammered.
/// </summary>
public sealed class ReconnectLoop : IAsyncDisposable
{
    private readonly ReconnectOptions _options;
    private readonly Func<FrameConnection?> _current;
    private readonly Random _random;
    private readonly CancellationTokenSource _stopping = new();
    private Task _running = Task.CompletedTask;
    private int _failures;

    /// <param name="options">The backoff and its clock.</param>
    /// <param name="current">Reads the owner's live connection, which stopping closes.</param>
    public ReconnectLoop(ReconnectOptions options, Func<FrameConnection?> current)
    {
        _options = options;
        _current = current;
        _random = options.Random ?? Random.Shared;
    }

    /// <summary>Cancelled once <see cref="DisposeAsync"/> is called.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Runs <paramref name="loop"/> on the pool; call once.</summary>
    public void Start(Func<Task> loop) => _running = Task.Run(loop, CancellationToken.None);

    /// <summary>When an attempt starts, on the options' clock (for <see cref="Ended"/>).</summary>
    public long AttemptStarted() => _options.TimeProvider.GetTimestamp();

    /// <summary>The connection of the attempt started at <paramref name="started"/> has ended: if it lived long enough, the failures count from zero again.</summary>
    public void Ended(long started)
    {
        if (_options.TimeProvider.GetElapsedTime(started) >= _options.MaxBackoff)
        {
            _failures = 0;
        }
    }

    /// <summary>Waits before the next attempt, one failure more; false once the loop is stopping.</summary>
    public async Task<bool> WaitBeforeRetryAsync()
    {
        try
        {
            await Task.Delay(_options.Backoff(_failures++, _random), _options.TimeProvider, _stopping.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Stops the loop: cancels it, closes the owner's live connection, waits for the loop to end, and closes a
    /// connection it made meanwhile. Only the first call does anything.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_current() is { } connection)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        await _running.ConfigureAwait(false);
        if (_current() is { } late)
        {
            await late.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
    }
}

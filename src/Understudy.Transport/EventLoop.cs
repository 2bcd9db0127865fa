using System.Threading.Channels;

namespace Understudy.Transport;

/// <summary>
/// Runs one node's protocol logic on a single logical thread: network readers, disk completions and the
/// tick timer post work here, and after each burst of work the node flushes once, so many client writes
/// share one replication frame and one fsync request (batching falls out of the queue).
/// </summary>
public sealed partial class EventLoop : IAsyncDisposable
{
    private readonly Channel<Action> _inbox = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
    private readonly Action _flush;
    private readonly Action<Exception> _onError;
    private readonly CancellationTokenSource _stop = new();
    private Task? _running;
    private Timer? _timer;

    /// <param name="flush">Run after each burst of work.</param>
    /// <param name="onError">Told of an exception a piece of work threw; the loop goes on.</param>
    /// <param name="runOnPoster">
    /// With true, <see cref="PostAndRun"/> runs the loop's turns on the posting thread when no turn is running (see
    /// EventLoop.OnPoster.cs); otherwise every turn runs on a thread-pool task that waits for work.
    /// </param>
    /// <param name="tickThread">
    /// With true, the tick comes from a thread of the loop's own that sleeps between ticks and posts it with
    /// <see cref="PostAndRun"/>, or through the pool while <see cref="TicksThroughPool"/> is set (EventLoop.Ticker.cs);
    /// otherwise from a <see cref="Timer"/>, whose callbacks share the
    /// runtime's timer thread and the thread pool. One thread per loop: for a server's loop, not for one per client.
    /// </param>
    public EventLoop(Action flush, Action<Exception> onError, bool runOnPoster = false, bool tickThread = false)
    {
        _flush = flush;
        _onError = onError;
        _runOnPoster = runOnPoster;
        _tickThread = tickThread;
    }

    /// <summary>Items processed since start (for metrics).</summary>
    public long Processed => Interlocked.Read(ref _processed);

    /// <summary>Bursts run since start, each ended by one flush (for metrics: items per turn is the batching).</summary>
    public long Turns => Interlocked.Read(ref _turns);

    /// <summary>Items run per burst at most before the flush, so a flood still flushes (and sends) now and then.</summary>
    private const int MaxBurst = 4096;

    private long _processed;
    private long _turns;
    private Func<Action?>? _readInbox;

    /// <summary>
    /// Starts the loop and posts <paramref name="tick"/> every <paramref name="interval"/>: from the loop's tick thread
    /// (the wait starts after each tick is posted, or run; EventLoop.Ticker.cs) or from a timer.
    /// </summary>
    public void Start(Action tick, TimeSpan interval)
    {
        _running = _runOnPoster ? Task.CompletedTask : Task.Run(RunAsync);
        if (_tickThread)
        {
            StartTicker(tick, interval);
        }
        else
        {
            _timer = new Timer(_ => Post(tick), null, interval, interval);
        }
    }

    /// <summary>Queues work for the loop; safe from any thread.</summary>
    public void Post(Action work)
    {
        if (_runOnPoster)
        {
            PostOnPoster(work, runHere: false);
        }
        else
        {
            _inbox.Writer.TryWrite(work);
        }
    }

    /// <summary>Runs <paramref name="work"/> on the loop and returns its result.</summary>
    public Task<T> InvokeAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(() =>
        {
            try
            {
                done.TrySetResult(work());
            }
            catch (Exception e)
            {
                done.TrySetException(e);
            }
        });
        return done.Task;
    }

    private async Task RunAsync()
    {
        var reader = _inbox.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
            {
                RunBurst(_readInbox ??= () => reader.TryRead(out var work) ? work : null, MaxBurst);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Runs one burst: up to <paramref name="limit"/> items, then the flush. Returns how many items ran.</summary>
    private int RunBurst(Func<Action?> next, int limit)
    {
        var burst = 0;
        while (burst < limit && next() is { } work)
        {
            Run(work);
            burst++;
        }

        Interlocked.Add(ref _processed, burst);
        Interlocked.Increment(ref _turns);
        Run(_flush);
        return burst;
    }

    private void Run(Action work)
    {
        try
        {
            work();
        }
        catch (Exception e)
        {
            // One bad input must not stop the node; the owner logs it (and decides whether it is fatal).
            _onError(e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }

        await StopTickerAsync().ConfigureAwait(false);

        await _stop.CancelAsync().ConfigureAwait(false);
        _inbox.Writer.TryComplete();
        if (_running is not null)
        {
            await _running.ConfigureAwait(false);
        }

        if (_runOnPoster)
        {
            await StopOnPosterAsync().ConfigureAwait(false);
        }

        _stop.Dispose();
        _stopTicking.Dispose();
    }
}

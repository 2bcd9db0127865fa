using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Transport;

namespace Understudy.Client;

/// <summary>
/// The one thread of work and the one tick timer that <see cref="UnderstudyClient"/>s run their protocol logic on. Each
/// client makes its own unless <see cref="UnderstudyClientOptions.Loop"/> names a shared one: a process with many
/// clients (one connection each, as a load generator or a connection-per-tenant service has) then wakes one loop and one
/// timer instead of one of each per client, and a busy loop drains every client's work in one pass instead of a thread
/// hand-off per request per client. Each client keeps its own connections, session and calls; only the thread and the
/// timer are shared. Dispose it after the clients that use it.
/// </summary>
public sealed class ClientLoop : IAsyncDisposable
{
    private readonly EventLoop _loop;
    private readonly ILogger _logger;

    // The clients' ticks: changed and run only on the loop.
    private readonly List<Action> _ticks = [];
    private int _disposed;

    /// <summary>A loop whose timer ticks every client on it every <paramref name="tickInterval"/> (the clients' own setting is not used).</summary>
    public ClientLoop(TimeSpan tickInterval, ILoggerFactory? loggers = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(tickInterval, TimeSpan.Zero);
        _logger = (loggers ?? NullLoggerFactory.Instance).CreateLogger("Understudy.Client");
        _loop = new EventLoop(() => { }, e => ClientLog.LoopError(_logger, e));
        _loop.Start(Tick, tickInterval);
    }

    /// <summary>A loop ticking every 5 ms, the clients' default.</summary>
    public ClientLoop()
        : this(TimeSpan.FromMilliseconds(5))
    {
    }

    /// <summary>Queues work; safe from any thread.</summary>
    internal void Post(Action work) => _loop.Post(work);

    /// <summary>From the next tick on, <paramref name="tick"/> runs at every tick (on the loop).</summary>
    internal void Join(Action tick) => Post(() => _ticks.Add(tick));

    /// <summary>On the loop: <paramref name="tick"/> runs no more.</summary>
    internal void LeaveOnLoop(Action tick) => _ticks.Remove(tick);

    private void Tick()
    {
        // A tick only posts work (joining and leaving are posted too), so the list does not change under this loop.
        foreach (var tick in _ticks)
        {
            try
            {
                tick();
            }
            catch (Exception e)
            {
                // One client's fault must not stop the others' deadlines and retries.
                ClientLog.LoopError(_logger, e);
            }
        }
    }

    /// <summary>Stops the timer and the loop; work still queued is dropped.</summary>
    public ValueTask DisposeAsync() => Interlocked.Exchange(ref _disposed, 1) == 0 ? _loop.DisposeAsync() : ValueTask.CompletedTask;
}

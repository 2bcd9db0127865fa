// The loop run by whoever posts to it: no thread waits for work, and a network reader runs the turn its input starts.
using System.Collections.Concurrent;

namespace Understudy.Transport;

public sealed partial class EventLoop
{
    // Turns one poster runs before it hands the rest to the thread pool, so a reader is not kept from its socket for long.
    private const int TurnsOnPoster = 4;

    private readonly bool _runOnPoster;
    private readonly ConcurrentQueue<Action> _posted = new();
    private Func<Action?>? _takePosted;

    // 1 while some thread runs (or is about to run) turns: the loop's one logical thread. Taken with a compare-exchange,
    // given back with a write, so what one turn wrote is seen by the next whichever thread runs it.
    private int _turnOwner;
    private volatile bool _stopped;

    /// <summary>
    /// Queues <paramref name="work"/> and, when no turn is running, runs the loop's turns here, on the caller's thread,
    /// until nothing is queued (at most a few turns, then the rest goes to the thread pool). Without
    /// <c>runOnPoster</c> it is <see cref="Post"/>. For a network reader whose handler only decodes and posts: the turn
    /// its input starts then runs without waking any other thread (a thread-pool worker per turn was most of a
    /// backup's CPU per replication frame: docs/BENCHMARKS.md, round 23). The caller must hold no lock the loop's
    /// work may take, and is kept from its next read while the turns run.
    /// </summary>
    public void PostAndRun(Action work)
    {
        if (_runOnPoster)
        {
            PostOnPoster(work, runHere: true);
        }
        else
        {
            _inbox.Writer.TryWrite(work);
        }
    }

    private void PostOnPoster(Action work, bool runHere)
    {
        if (_stopped)
        {
            return;
        }

        _posted.Enqueue(work);
        if (Interlocked.CompareExchange(ref _turnOwner, 1, 0) != 0)
        {
            // A turn is running (or scheduled): it takes this before it gives the loop up.
            return;
        }

        if (runHere)
        {
            RunTurns(TurnsOnPoster);
        }
        else
        {
            RunOnPool();
        }
    }

    private void RunOnPool() => ThreadPool.UnsafeQueueUserWorkItem(static loop => loop.RunTurns(int.MaxValue), this, preferLocal: false);

    /// <summary>Runs turns while work is queued, holding <see cref="_turnOwner"/>; gives it back (or to the pool) at the end.</summary>
    private void RunTurns(int maxTurns)
    {
        var take = _takePosted ??= () => _posted.TryDequeue(out var next) ? next : null;
        for (var turns = 0; ; turns++)
        {
            if (_stopped)
            {
                Volatile.Write(ref _turnOwner, 0);
                return;
            }

            if (turns == maxTurns)
            {
                // Still owned: the pool's worker goes on from here.
                RunOnPool();
                return;
            }

            RunBurst(take, MaxBurst);
            if (!_posted.IsEmpty)
            {
                continue;
            }

            Volatile.Write(ref _turnOwner, 0);

            // Work posted between the last look and the release found the loop owned and left it to us: take it back.
            if (_posted.IsEmpty || Interlocked.CompareExchange(ref _turnOwner, 1, 0) != 0)
            {
                return;
            }
        }
    }

    /// <summary>Stops taking work and waits until no turn runs, so nothing of the loop runs once disposal returns.</summary>
    private async Task StopOnPosterAsync()
    {
        _stopped = true;
        while (Interlocked.CompareExchange(ref _turnOwner, 1, 0) != 0)
        {
            await Task.Delay(1).ConfigureAwait(false);
        }

        _posted.Clear();
    }
}

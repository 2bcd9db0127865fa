// A thread of the loop's own for the turns its posters do not run: woken directly, instead of a thread-pool worker.
namespace Understudy.Transport;

public sealed partial class EventLoop
{
    // How long the turn thread spins for the next hand-over before it sleeps, and only when the last one came within
    // SpinAfterRecent: a primary under load is handed its clients' turns every few hundred microseconds and a spin
    // catches the next without a futex wake-up, where a backup is handed little but its tick (every 5 ms) and a spin
    // there is only CPU taken from the others (docs/BENCHMARKS.md, round 26).
    private const int SpinIterations = 64;
    private static readonly long SpinAfterRecent = System.Diagnostics.Stopwatch.Frequency / 2000;

    private readonly bool _ownTurnThread;
    // A monitor, not a Lock: the turn thread sleeps on it with Monitor.Wait.
    private readonly object _turnGate = new();
    private readonly TaskCompletionSource _turnThreadEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Thread? _turnThread;

    // 1 while a hand-over waits for the turn thread (the poster that took the loop gave it to that thread); at most one
    // at a time, since only the loop's owner hands it over.
    private int _handedOver;

    // 1 while the turn thread sleeps (or is about to) under _turnGate: a hand-over then pulses it.
    private int _turnThreadSleeps;
    private volatile bool _turnThreadExit;

    private void StartTurnThread()
    {
        _turnThread = new Thread(RunTurnThread) { IsBackground = true, Name = "Understudy loop" };
        _turnThread.Start();
    }

    /// <summary>The loop is owned (by the caller's compare-exchange) and handed to the turn thread.</summary>
    private void WakeTurnThread()
    {
        Interlocked.Exchange(ref _handedOver, 1);
        if (Volatile.Read(ref _turnThreadSleeps) != 0)
        {
            lock (_turnGate)
            {
                Monitor.Pulse(_turnGate);
            }
        }
    }

    private void RunTurnThread()
    {
        try
        {
            var lastHandOver = 0L;
            while (true)
            {
                WaitForHandOver(System.Diagnostics.Stopwatch.GetTimestamp() - lastHandOver < SpinAfterRecent);
                if (_turnThreadExit)
                {
                    return;
                }

                lastHandOver = System.Diagnostics.Stopwatch.GetTimestamp();
                RunTurns(int.MaxValue);
            }
        }
        finally
        {
            _turnThreadEnded.TrySetResult();
        }
    }

    /// <summary>Returns once a hand-over (or the exit) came, having taken it.</summary>
    private void WaitForHandOver(bool spin)
    {
        if (spin)
        {
            for (var i = 0; i < SpinIterations && Volatile.Read(ref _handedOver) == 0 && !_turnThreadExit; i++)
            {
                Thread.SpinWait(30);
            }
        }

        if (Interlocked.Exchange(ref _handedOver, 0) != 0 || _turnThreadExit)
        {
            return;
        }

        lock (_turnGate)
        {
            // Said before the last look: a hand-over after it sees the flag and pulses under the gate, which it can
            // only take once this thread waits (Monitor.Wait releases it), so no pulse is lost.
            Interlocked.Exchange(ref _turnThreadSleeps, 1);
            while (Interlocked.Exchange(ref _handedOver, 0) == 0 && !_turnThreadExit)
            {
                Monitor.Wait(_turnGate);
            }

            Volatile.Write(ref _turnThreadSleeps, 0);
        }
    }

    /// <summary>After the loop stopped (no turn runs, none will be handed over): ends the turn thread.</summary>
    private async Task StopTurnThreadAsync()
    {
        if (_turnThread is null)
        {
            return;
        }

        _turnThreadExit = true;
        lock (_turnGate)
        {
            Monitor.Pulse(_turnGate);
        }

        await _turnThreadEnded.Task.ConfigureAwait(false);
    }
}

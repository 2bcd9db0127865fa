// The loop's tick timer: a thread of its own that sleeps between ticks and, on a loop run by its posters, runs the
// tick's turn itself.
namespace Understudy.Transport;

public sealed partial class EventLoop
{
    // Set once, at disposal: wakes the ticker from its wait. No spinning before the wait (spinCount 0): the ticker waits
    // a whole interval every time, so a spin would only burn CPU.
    private readonly ManualResetEventSlim _stopTicking = new(initialState: false, spinCount: 0);
    private readonly TaskCompletionSource _tickerDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _tickThread;
    private volatile bool _ticksThroughPool;
    private Thread? _ticker;

    /// <summary>
    /// Starts the thread that posts <paramref name="tick"/> every <paramref name="interval"/> with
    /// <see cref="PostAndRun"/>. A <see cref="Timer"/> ran its callback on a thread-pool worker, which then handed the
    /// turn to another: two pool work items per tick, 400 a second at 5 ms, and on a backup (whose frames run on the
    /// readers) they were all its pool ever got, just often enough that its idle workers spun on sched_yield
    /// instead of sleeping, a third of a backup's CPU (docs/BENCHMARKS.md, "Key-value puts, round 25"). Here an idle
    /// loop's tick turn runs on this thread and the pool is not woken, unless <see cref="TicksThroughPool"/> asks for it.
    /// </summary>
    private void StartTicker(Action tick, TimeSpan interval)
    {
        // The wait is in whole milliseconds: at least one, so a sub-millisecond interval does not spin either.
        var waitMs = (int)Math.Clamp(Math.Ceiling(interval.TotalMilliseconds), 1, int.MaxValue);
        _ticker = new Thread(() => RunTicker(tick, waitMs)) { IsBackground = true, Name = "Understudy tick" };
        _ticker.Start();
    }

    private void RunTicker(Action tick, int waitMs)
    {
        try
        {
            // The next wait starts after the tick's turn, so a slow turn delays the ticks instead of piling them up.
            while (!_stopTicking.Wait(waitMs))
            {
                if (_ticksThroughPool)
                {
                    // As a timer's callback did: a pool worker posts the tick, and the idle loop's turn goes to another.
                    ThreadPool.UnsafeQueueUserWorkItem(static s => s.Loop.Post(s.Tick), (Loop: this, Tick: tick), preferLocal: false);
                }
                else
                {
                    PostAndRun(tick);
                }
            }
        }
        finally
        {
            _tickerDone.TrySetResult();
        }
    }

    /// <summary>
    /// With a tick thread: true hands each tick to the thread pool as a timer would (two work items: the post, then the
    /// idle loop's turn), false runs it with <see cref="PostAndRun"/> on the tick thread. Set from any thread; the next
    /// tick follows it. For a loop whose other posted turns go to the pool and are waited on (a primary's clients'
    /// turns): the ticks' pool traffic keeps its idle workers spinning, so those turns find one awake instead of waking a
    /// sleeping one (docs/BENCHMARKS.md, round 31: without it, throughput with 4 shared connections fell 6-17 %).
    /// </summary>
    public bool TicksThroughPool
    {
        get => _ticksThroughPool;
        set => _ticksThroughPool = value;
    }

    /// <summary>Stops the ticker and waits until it has left any turn it was running, so no tick is posted after.</summary>
    private Task StopTickerAsync()
    {
        _stopTicking.Set();
        return _ticker is null ? Task.CompletedTask : _tickerDone.Task;
    }
}

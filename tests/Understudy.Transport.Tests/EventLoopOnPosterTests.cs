namespace Understudy.Transport.Tests;

/// <summary>
/// An <see cref="EventLoop"/> run by its posters (<c>runOnPoster</c>): still one logical thread (never two turns at
/// once, every item once, in order per poster, a flush after each burst), the turn run on the caller of
/// <see cref="EventLoop.PostAndRun"/> when the loop is idle, and nothing run after disposal.
/// </summary>
public sealed class EventLoopOnPosterTests
{
    [Fact]
    public async Task PostAndRun_on_an_idle_loop_runs_the_turn_and_its_flush_on_the_caller()
    {
        var flushes = 0;
        await using var loop = new EventLoop(() => flushes++, e => Assert.Fail(e.ToString()), runOnPoster: true);
        loop.Start(() => { }, TimeSpan.FromHours(1));

        var caller = Environment.CurrentManagedThreadId;
        var ranOn = -1;
        loop.PostAndRun(() => ranOn = Environment.CurrentManagedThreadId);

        Assert.Equal(caller, ranOn);
        Assert.Equal(1, flushes);
    }

    [Fact]
    public async Task Post_runs_on_the_pool_not_the_caller()
    {
        await using var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true);
        loop.Start(() => { }, TimeSpan.FromHours(1));

        // Posted from a thread of its own that then waits for the work: run on the caller, it would never finish.
        var ran = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var caller = -1;
        var poster = new Thread(() =>
        {
            caller = Environment.CurrentManagedThreadId;
            loop.Post(() => ran.TrySetResult(Environment.CurrentManagedThreadId));
            ran.Task.Wait(TimeSpan.FromSeconds(10));
        });
        poster.Start();

        var ranOn = await ran.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        poster.Join();
        Assert.NotEqual(caller, ranOn);
    }

    [Fact]
    public async Task Concurrent_posters_never_run_two_turns_at_once_and_every_item_runs_once_in_order()
    {
        const int posters = 8;
        const int perPoster = 20_000;
        var inside = 0;
        var overlaps = 0;
        var flushes = 0L;
        var seen = new int[posters];
        var outOfOrder = 0;
        var ran = 0;

        // Plain (unsynchronised) writes inside the work: the loop's ownership hand-over must publish them.
        void Enter()
        {
            if (Interlocked.Increment(ref inside) != 1)
            {
                Interlocked.Increment(ref overlaps);
            }
        }

        void Leave() => Interlocked.Decrement(ref inside);

        var loop = new EventLoop(
            () =>
            {
                Enter();
                flushes++;
                Leave();
            },
            e => Assert.Fail(e.ToString()),
            runOnPoster: true);
        loop.Start(() => { }, TimeSpan.FromMilliseconds(1));
        try
        {
            var threads = Enumerable.Range(0, posters).Select(p => new Thread(() =>
            {
                for (var i = 1; i <= perPoster; i++)
                {
                    var n = i;
                    Action work = () =>
                    {
                        Enter();
                        if (seen[p] != n - 1)
                        {
                            outOfOrder++;
                        }

                        seen[p] = n;
                        ran++;
                        Leave();
                    };
                    if (i % 3 == 0)
                    {
                        loop.Post(work);
                    }
                    else
                    {
                        loop.PostAndRun(work);
                    }
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());

            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (Volatile.Read(ref ran) < posters * perPoster && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10, TestContext.Current.CancellationToken);
            }

            var done = await loop.InvokeAsync(() => ran).WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            Assert.True(done == posters * perPoster, $"every item run once: expected {posters * perPoster}, ran {done}");
            Assert.Equal(0, overlaps);
            Assert.Equal(0, outOfOrder);
            Assert.All(seen, last => Assert.Equal(perPoster, last));
            Assert.True(loop.Turns <= loop.Processed, $"a flush per burst: {loop.Turns} turns for {loop.Processed} items");
        }
        finally
        {
            await loop.DisposeAsync();
        }
    }

    [Fact]
    public async Task Nothing_runs_after_disposal()
    {
        var ran = 0;
        var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true);
        loop.Start(() => { }, TimeSpan.FromHours(1));
        loop.PostAndRun(() => ran++);
        await loop.DisposeAsync();

        loop.PostAndRun(() => ran++);
        loop.Post(() => ran++);
        await Task.Delay(50, TestContext.Current.CancellationToken);
        Assert.Equal(1, ran);
    }

    [Fact]
    public async Task The_tick_of_an_idle_loop_runs_on_the_tick_thread_not_the_pool()
    {
        // A tick handed to the thread pool woke a backup's idle workers 400 times a second (EventLoop.Ticker.cs).
        var ticked = new TaskCompletionSource<(bool Pool, string? Name)>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true, tickThread: true);
        loop.Start(() => ticked.TrySetResult((Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name)), TimeSpan.FromMilliseconds(1));

        var (pool, name) = await ticked.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.False(pool);
        Assert.Equal("Understudy tick", name);
    }

    [Fact]
    public async Task Ticks_keep_coming_while_the_loop_runs()
    {
        var ticks = 0;
        var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true, tickThread: true);
        loop.Start(() => Interlocked.Increment(ref ticks), TimeSpan.FromMilliseconds(1));

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref ticks) < 5 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }

        Assert.True(Volatile.Read(ref ticks) >= 5, $"ticks every millisecond: {ticks} in 10 s");
        await loop.DisposeAsync();
    }

    [Fact]
    public async Task Disposal_wakes_the_tick_thread_from_a_long_wait()
    {
        var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true, tickThread: true);
        loop.Start(() => { }, TimeSpan.FromHours(1));
        await loop.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Without_a_tick_thread_the_tick_comes_from_the_thread_pool()
    {
        // Clients' loops keep the timer: a thread per client would cost more than the pool's wake-ups it saves.
        var ticked = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true);
        loop.Start(() => ticked.TrySetResult(Thread.CurrentThread.IsThreadPoolThread), TimeSpan.FromMilliseconds(1));

        Assert.True(await ticked.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Ticks_go_through_the_pool_while_asked_and_back_to_the_tick_thread_after()
    {
        // A primary's loop keeps its pool busy with the ticks, as a timer did (round 31); a backup's runs them on the thread.
        var onPool = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var onThread = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()), runOnPoster: true, tickThread: true) { TicksThroughPool = true };
        loop.Start(
            () =>
            {
                if (Thread.CurrentThread.IsThreadPoolThread)
                {
                    onPool.TrySetResult();
                    loop.TicksThroughPool = false;
                }
                else if (onPool.Task.IsCompleted && Thread.CurrentThread.Name == "Understudy tick")
                {
                    onThread.TrySetResult();
                }
            },
            TimeSpan.FromMilliseconds(1));

        await onPool.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        await onThread.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }
}

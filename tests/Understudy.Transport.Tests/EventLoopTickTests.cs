namespace Understudy.Transport.Tests;

/// <summary>
/// The tick of an <see cref="EventLoop"/> whose interval changes at run time (a monitor ticks slowly as a follower and
/// fast once active): the new interval is reported, and the first tick at it comes at once, not one old interval later.
/// </summary>
public sealed class EventLoopTickTests
{
    [Fact]
    public async Task A_changed_interval_is_reported_and_ticks_at_once_rather_than_after_the_old_interval()
    {
        var ticked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()));
        loop.Start(() => ticked.TrySetResult(), TimeSpan.FromHours(1));
        Assert.Equal(TimeSpan.FromHours(1), loop.TickInterval);

        // An hour to the first tick at the old interval: a tick within the test's deadline came from the change.
        await loop.InvokeAsync(() =>
        {
            loop.ChangeTickInterval(TimeSpan.FromHours(2));
            return true;
        });
        await ticked.Task.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(TimeSpan.FromHours(2), loop.TickInterval);
    }

    [Fact]
    public async Task A_change_after_disposal_is_ignored()
    {
        var loop = new EventLoop(() => { }, e => Assert.Fail(e.ToString()));
        loop.Start(() => { }, TimeSpan.FromHours(1));
        await loop.DisposeAsync();

        // A turn that ran while the host was stopping may still ask for another pace: no throw, nothing changes.
        loop.ChangeTickInterval(TimeSpan.FromHours(3));
        Assert.Equal(TimeSpan.FromHours(1), loop.TickInterval);
    }
}

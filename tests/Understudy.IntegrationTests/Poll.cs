namespace Understudy.IntegrationTests;

/// <summary>
/// Waiting without sleeping a fixed time: poll a condition until it holds or a generous deadline passes
/// (reached only on failure); the timeout message says the phase and what was expected versus seen.
/// </summary>
internal static class Poll
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public static async Task UntilAsync(Func<bool> condition, string phase, Func<string> describe, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var deadline = DateTime.UtcNow + limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{phase}: not reached within {limit.TotalSeconds:0} s; {describe()}");
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    public static async Task UntilAsync(Func<Task<bool>> condition, string phase, Func<Task<string>> describe, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var deadline = DateTime.UtcNow + limit;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{phase}: not reached within {limit.TotalSeconds:0} s; {await describe()}");
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }
}

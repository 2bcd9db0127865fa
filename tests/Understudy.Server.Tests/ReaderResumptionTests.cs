using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Orchestration.Polling;

namespace Understudy.Server.Tests;

/// <summary>
/// <see cref="CallResumption.Reader"/>: a caller's code after an awaited call runs on the thread that read the answer.
/// Every answer still reaches its own caller, a caller may call again from there, and calls that end some other way
/// (cancelled, the client disposed) still end.
/// </summary>
public sealed class ReaderResumptionTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static async Task<UnderstudyClient> ConnectAsync(InProcessCluster cluster) =>
        await UnderstudyClient.ConnectAsync(
            new UnderstudyClientOptions
            {
                Monitor = cluster.Monitor.Options.ClientListen,
                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(20) },
                ResumeOn = CallResumption.Reader,
            },
            Token);

    [Fact]
    public async Task Answers_resumed_on_the_reader_each_reach_their_own_caller_which_may_call_again_from_there()
    {
        await using var cluster = await InProcessCluster.StartAsync(servers: 1);
        await cluster.WaitForPrimaryAsync("start-up");
        await using var client = await ConnectAsync(cluster);

        // 16 callers on one connection, each adding 1 fifty times, each next add sent from where the last answer resumed
        // it: every add returns the total just after it, so the 800 answers are 1..800 exactly when each reached its caller.
        const int callers = 16, adds = 50;
        var totals = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            var seen = new List<long>();
            for (var i = 0; i < adds; i++)
            {
                seen.Add(Counter.Decode((await client.ExecuteAsync(Counter.Add(1), Token)).Payload));
            }

            return seen;
        }, Token))).WaitAsync(Poll.DefaultTimeout, Token);

        var all = totals.SelectMany(t => t).Order().ToList();
        Assert.True(all.SequenceEqual(Enumerable.Range(1, callers * adds).Select(i => (long)i)), $"expected the totals 1..{callers * adds} once each, got {all.Count} answers from {all.FirstOrDefault()} to {all.LastOrDefault()}, {all.Distinct().Count()} distinct");
        Assert.All(totals, t => Assert.True(t.SequenceEqual(t.Order()), "one caller's answers come back in the order it sent its calls"));
        Assert.Equal(callers * adds, Counter.Decode((await client.QueryAsync(Counter.Total(), Token)).Payload));
    }

    [Fact]
    public async Task Calls_resumed_on_the_reader_still_end_when_cancelled_or_when_the_client_is_disposed()
    {
        // No server, so no primary: calls wait in the client, unsent, and end only by cancellation or disposal.
        await using var cluster = await InProcessCluster.StartAsync(servers: 0);
        var client = await ConnectAsync(cluster);
        try
        {
            using var cancel = new CancellationTokenSource();
            var cancelled = client.QueryAsync(Counter.Total(), cancel.Token);
            var disposedOf = client.QueryAsync(Counter.Total(), Token);
            await cancel.CancelAsync();
            var e = await Assert.ThrowsAsync<UnderstudyCanceledException>(() => cancelled.WaitAsync(Poll.DefaultTimeout, Token));
            Assert.Equal(OutcomeKind.Failed, e.Outcome);
            Assert.False(disposedOf.IsCompleted, "the other call is still waiting for a primary, not cancelled with the first");

            await client.DisposeAsync();
            await Assert.ThrowsAsync<ObjectDisposedException>(() => disposedOf.WaitAsync(Poll.DefaultTimeout, Token));
        }
        finally
        {
            await client.DisposeAsync();
        }
    }
}

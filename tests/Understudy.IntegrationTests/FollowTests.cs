using System.Collections.Concurrent;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Polling;

namespace Understudy.IntegrationTests;

/// <summary>UnderstudyClient.FollowAsync: a `tail -f` of the message store over a real cluster.</summary>
public class FollowTests(ITestOutputHelper output)
{
    [Fact]
    public async Task FollowAsync_yields_what_exists_then_what_commits_in_order_exactly_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync();
        var writer = test.NewClient();
        var reader = test.NewClient();
        var written = new List<SequencedMessage>();
        for (var i = 0; i < 30; i++)
        {
            var text = $"before {i}";
            written.Add(new SequencedMessage(await writer.AppendAsync(text, ct), text));
        }

        var received = new ConcurrentQueue<SequencedMessage>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var following = Task.Run(
            async () =>
            {
                await foreach (var m in reader.FollowAsync(1, stop.Token))
                {
                    received.Enqueue(m);
                }
            },
            ct);

        await Poll.UntilAsync(() => received.Count >= written.Count || following.IsCompleted, Poll.DefaultTimeout, "FollowAsync yields the messages already there", () => $"{received.Count} received", ct);

        // Then more, in bursts with pauses between, so the follower both finds messages and backs off on none.
        for (var burst = 0; burst < 5; burst++)
        {
            for (var i = 0; i < 10; i++)
            {
                var text = $"after {burst}.{i}";
                written.Add(new SequencedMessage(await writer.AppendAsync(text, ct), text));
            }

            var want = written.Count;
            await Poll.UntilAsync(() => received.Count >= want || following.IsCompleted, Poll.DefaultTimeout, $"FollowAsync yields burst {burst} as it commits", () => $"{received.Count} of {want} received", ct);
        }

        await stop.CancelAsync();
        await following.WaitAsync(TimeSpan.FromSeconds(5), ct); // cancelling ends the enumeration without an exception
        output.WriteLine($"followed {received.Count} messages");
        Assert.Equal(Enumerable.Range(1, written.Count).Select(i => (long)i), written.Select(m => m.Seq));
        Assert.Equal(written, received.ToList());
    }
}

namespace Understudy.IntegrationTests;

/// <summary>Real processes, real kill -9: no acknowledged message may be lost or duplicated.</summary>
public class FailoverTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Kill_9_of_the_primary_while_a_client_writes_loses_and_duplicates_nothing()
    {
        await using var test = await TestCluster.StartAsync();
        var client = test.NewClient();
        var acked = new List<(long Seq, string Text)>();
        using var writing = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);

        var writer = Task.Run(async () =>
        {
            for (var i = 0; !writing.IsCancellationRequested; i++)
            {
                var text = $"m-{i}";
                acked.Add((await client.AppendAsync(text, TestContext.Current.CancellationToken), text));
            }
        }, TestContext.Current.CancellationToken);

        await WaitUntil(() => acked.Count >= 200, "writes before the kill");
        var primary = await test.PrimaryAsync();
        primary.Process.Kill();
        var before = acked.Count;
        await test.WaitForAsync("promotion after kill -9", s => s.Primary is not null && s.Primary != primary.Address.ToString());
        await WaitUntil(() => acked.Count >= before + 200, "writes after the failover");
        await writing.CancelAsync();
        await Task.WhenAny(writer);

        var log = await client.ReadAllAsync(TestContext.Current.CancellationToken);
        output.WriteLine($"acked {acked.Count}, log {log.Count}");
        var texts = log.Select(m => m.Text).ToList();
        Assert.Equal(texts.Count, texts.Distinct().Count());
        foreach (var (seq, text) in acked)
        {
            Assert.True(seq <= log.Count && log[(int)seq - 1].Text == text, $"acknowledged '{text}' as {seq} but the log has {(seq <= log.Count ? log[(int)seq - 1].Text : "nothing")} there");
        }
    }

    private static async Task WaitUntil(Func<bool> condition, string phase)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{phase}: not reached within 30 s");
            }

            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }
}

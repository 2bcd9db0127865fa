using System.Diagnostics;
using System.Text.Json;
using Understudy.IntegrationTests;

namespace Understudy.OperatorTests;

/// <summary>
/// The servers' /primary and /replica, as a load balancer polls them (Patroni's way): across a kill -9 and a
/// SIGSTOP of the primary, the old primary's /primary stops answering 200 before the new one's starts, and
/// /replica is 200 only on an in-sync backup within the lag asked for.
/// </summary>
public class LoadBalancerEndpointTests(ITestOutputHelper output)
{
    /// <summary>
    /// For single requests to a live server, whose answers these tests judge: the bound only ends a request that hangs.
    /// 2 s once ended an answer from a server starved while the whole suite ran in parallel (a timing, not an answer).
    /// Timing matters only to the <see cref="EndpointPoller"/>, which has its own.
    /// </summary>
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(15) };

    [Fact]
    public async Task Primary_endpoint_never_answers_200_on_two_servers_across_a_kill_9()
    {
        await using var test = await TestCluster.StartAsync(serverHttp: true);
        var ports = HttpPorts(test);
        var writer = test.NewClient();
        using var load = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var writes = WriteUntilCancelledAsync(writer, load.Token);

        await using var poller = new EndpointPoller(ports, "/primary", Stopwatch.StartNew());
        var primary = await CurrentPrimaryAsync(test, poller, "kill -9");

        var killedAt = poller.Clock.Elapsed.TotalMilliseconds;
        primary.Process.Kill();
        await Wait.UntilAsync("kill -9: another server's /primary answers 200", () => poller.Count(s => s.Server != primary.Number && s.Status == 200 && s.SentMs > killedAt) >= 20, () => EndpointPoller.Summary(poller.Samples));
        await poller.StopAsync();
        await load.CancelAsync();
        await writes;

        var samples = poller.Samples;
        var (lastOld, firstNew) = EndpointPoller.AssertHandoverWithoutOverlap(samples, primary.Number);
        Assert.DoesNotContain(samples, s => s.Server == primary.Number && s.Status == 200 && s.SentMs > killedAt);
        output.WriteLine($"kill -9 of server {primary.Number}: its last 200 at {lastOld.ReceivedMs:0.0} ms (killed at {killedAt:0.0} ms), server {firstNew.Server}'s first 200 at {firstNew.ReceivedMs:0.0} ms: /primary had no 200 for {firstNew.ReceivedMs - lastOld.ReceivedMs:0.0} ms. {samples.Count} samples: {EndpointPoller.Summary(samples)}");
    }

    [Fact]
    public async Task Primary_endpoint_never_answers_200_on_two_servers_across_a_sigstop_pause()
    {
        await using var test = await TestCluster.StartAsync(serverHttp: true);
        var ports = HttpPorts(test);
        await using var poller = new EndpointPoller(ports, "/primary", Stopwatch.StartNew());
        var primary = await CurrentPrimaryAsync(test, poller, "SIGSTOP");

        var pausedAt = poller.Clock.Elapsed.TotalMilliseconds;
        Assert.True(primary.Process.Pause(), "SIGSTOP failed");
        await Wait.UntilAsync("SIGSTOP: another server's /primary answers 200", () => poller.Count(s => s.Server != primary.Number && s.Status == 200 && s.SentMs > pausedAt) >= 20, () => EndpointPoller.Summary(poller.Samples));

        // The paused primary wakes with a stale view: it must answer 503 (its lease ran out while it slept).
        var resumedAt = poller.Clock.Elapsed.TotalMilliseconds;
        Assert.True(primary.Process.Resume(), "SIGCONT failed");
        await Wait.UntilAsync("SIGCONT: the old primary answers /primary again", () => poller.Count(s => s.Server == primary.Number && s.Status != 0 && s.SentMs > resumedAt) >= 30, () => EndpointPoller.Summary(poller.Samples));
        await poller.StopAsync();

        var samples = poller.Samples;
        var (lastOld, firstNew) = EndpointPoller.AssertHandoverWithoutOverlap(samples, primary.Number);
        var afterResume = samples.Where(s => s.Server == primary.Number && s.SentMs > resumedAt && s.Status != 0).ToList();
        Assert.All(afterResume, s => Assert.Equal(503, s.Status));
        output.WriteLine($"SIGSTOP of server {primary.Number} at {pausedAt:0.0} ms: its last 200 at {lastOld.ReceivedMs:0.0} ms, server {firstNew.Server}'s first 200 at {firstNew.ReceivedMs:0.0} ms; after SIGCONT it answered {afterResume.Count} times, all 503. {EndpointPoller.Summary(samples)}");

        // And it comes back as an in-sync backup: /replica turns 200 there.
        await Wait.ForAsync("SIGCONT: the old primary is an in-sync backup again (/replica 200)", () => GetAsync(ports[primary.Number - 1], "/replica"), r => r.Status == 200);
    }

    [Fact]
    public async Task Replica_endpoint_is_200_only_on_an_in_sync_backup_and_honours_lag()
    {
        await using var test = await TestCluster.StartAsync(serverHttp: true);
        var ports = HttpPorts(test);
        var primary = await test.PrimaryAsync();
        var backups = test.Cluster.Servers.Where(s => s.Number != primary.Number).ToList();

        Assert.Equal(200, (await GetAsync(ports[primary.Number - 1], "/primary")).Status);
        Assert.Equal(503, (await GetAsync(ports[primary.Number - 1], "/replica")).Status);
        foreach (var b in backups)
        {
            Assert.Equal(503, (await GetAsync(ports[b.Number - 1], "/primary")).Status);
            await Wait.ForAsync($"/replica 200 on in-sync backup {b.Number}", () => GetAsync(ports[b.Number - 1], "/replica"), r => r.Status == 200);
            Assert.Equal(400, (await GetAsync(ports[b.Number - 1], "/replica?lag=soon")).Status);
            Assert.Equal(400, (await GetAsync(ports[b.Number - 1], "/replica?lag=-1")).Status);
        }

        // Under write load a backup's applied index trails the primary's commits now and then: ?lag=N must
        // answer 200 exactly when the lag it reports is at most N (it is in sync and hears the primary).
        var writer = test.NewClient();
        using var load = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var writes = WriteUntilCancelledAsync(writer, load.Token);
        var checkedCount = 0;
        var lagging = 0;
        var watch = Stopwatch.StartNew();
        while (checkedCount < 300 || (lagging == 0 && watch.Elapsed < TimeSpan.FromSeconds(3)))
        {
            // Pacing, so the polling does not starve the cluster on a small machine.
            await Task.Delay(2, TestContext.Current.CancellationToken);
            foreach (var b in backups)
            {
                foreach (var limit in new[] { 0, 2, 1_000_000 })
                {
                    var r = await GetAsync(ports[b.Number - 1], $"/replica?lag={limit}");
                    using var doc = JsonDocument.Parse(r.Body);
                    var root = doc.RootElement;
                    var lag = root.GetProperty("lag").GetInt64();
                    var routable = root.GetProperty("role").GetString() == "backup" && root.GetProperty("inSync").GetBoolean() &&
                        root.GetProperty("msSincePrimary") is { ValueKind: JsonValueKind.Number } contact && contact.GetDouble() < 1000;
                    Assert.True((r.Status == 200) == (routable && lag <= limit), $"/replica?lag={limit} on backup {b.Number} answered {r.Status}: {r.Body}");
                    checkedCount++;
                    if (routable && lag > limit)
                    {
                        lagging++;
                    }
                }
            }
        }

        await load.CancelAsync();
        await writes;
        output.WriteLine($"{checkedCount} /replica?lag=N answers checked; {lagging} were 503 because the backup lagged more than N");

        // A backup that is not in sync (killed and restarted, catching up) is not a replica to route to until it is.
        var now = await test.WaitHealthyAsync("before killing a backup");
        var b1 = test.Cluster.Servers.First(s => s.Address.ToString() != now.Primary);
        b1.Process.Kill();

        // The primary drops a dead backup from the in-sync set when a write waits for it: give it one.
        await writer.AppendAsync("after the kill", TestContext.Current.CancellationToken);
        await test.WaitForAsync($"backup {b1.Number} out of the in-sync set after kill -9", s => !s.InSync.Contains(b1.Address.ToString()));
        var refused = await GetAsync(ports[b1.Number - 1], "/replica");
        Assert.Equal(0, refused.Status);
        b1.Process.Start();
        await Wait.ForAsync($"/replica 200 on backup {b1.Number} once it is back in sync", () => GetAsync(ports[b1.Number - 1], "/replica"), r => r.Status == 200);
    }

    /// <summary>
    /// The primary as /primary and the monitor both show it, once every server has been polled a while: read from the
    /// endpoints rather than before, since a starved machine may fail over on its own at start-up.
    /// </summary>
    private static async Task<Understudy.Orchestration.Clusters.LocalServer> CurrentPrimaryAsync(TestCluster test, EndpointPoller poller, string phase)
    {
        Understudy.Orchestration.Clusters.LocalServer? primary = null;
        await Wait.ForAsync(
            $"{phase}: /primary polled on every server, 200 from the monitor's primary",
            async () =>
            {
                primary = await test.Cluster.PrimaryAsync(TestContext.Current.CancellationToken);
                var samples = poller.Samples;
                var recent = samples.Where(s => s.SentMs > poller.Clock.Elapsed.TotalMilliseconds - 200).ToList();
                return (Primary: primary?.Number ?? 0, Polled: Enumerable.Range(1, test.Cluster.Servers.Count).Min(n => samples.Count(s => s.Server == n)), OkFromIt: recent.Count(s => s.Status == 200 && s.Server == primary?.Number), OkFromOthers: recent.Count(s => s.Status == 200 && s.Server != primary?.Number));
            },
            v => v.Primary > 0 && v.Polled >= 20 && v.OkFromIt >= 5 && v.OkFromOthers == 0);
        return primary!;
    }

    internal static IReadOnlyList<int> HttpPorts(TestCluster test) =>
        [.. Enumerable.Range(1, test.Cluster.Servers.Count).Select(test.Cluster.Options.HttpPortOf)];

    internal static async Task<(int Status, string Body)> GetAsync(int port, string path)
    {
        try
        {
            using var response = await Http.GetAsync(new Uri($"http://127.0.0.1:{port}{path}"), TestContext.Current.CancellationToken);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        }
        catch (HttpRequestException e)
        {
            return (0, e.Message);
        }
    }

    internal static Task WriteUntilCancelledAsync(Understudy.Client.UnderstudyClient client, CancellationToken token) =>
        Task.Run(
            async () =>
            {
                for (var i = 0; !token.IsCancellationRequested; i++)
                {
                    try
                    {
                        await client.AppendAsync($"load-{i}", token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    catch (Understudy.Client.UnderstudyException)
                    {
                        // Load only: what is checked here is HTTP, not these writes.
                    }
                }
            },
            CancellationToken.None);
}

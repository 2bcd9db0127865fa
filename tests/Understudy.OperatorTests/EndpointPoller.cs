using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace Understudy.OperatorTests;

/// <summary>One answer (or non-answer) of an HTTP endpoint: when the request left, when it ended, the status (0: no answer).</summary>
internal sealed record Sample(int Server, double SentMs, double ReceivedMs, int Status, long Epoch, string Body)
{
    public override string ToString() => $"server {Server} {Status} epoch {Epoch} [{SentMs:0.0}-{ReceivedMs:0.0} ms]";
}

/// <summary>
/// Polls one path on several servers as fast as they answer, each in its own loop, and keeps every sample.
/// A refused connection or no answer within the timeout is recorded as status 0 (not 200).
/// </summary>
internal sealed class EndpointPoller : IAsyncDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromMilliseconds(250), PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly ConcurrentQueue<Sample> _samples = new();

    public EndpointPoller(IReadOnlyList<int> httpPorts, string path, Stopwatch clock)
    {
        Clock = clock;
        for (var i = 0; i < httpPorts.Count; i++)
        {
            var server = i + 1;
            var url = new Uri($"http://127.0.0.1:{httpPorts[i]}{path}");
            _loops.Add(Task.Run(() => LoopAsync(server, url), CancellationToken.None));
        }
    }

    public Stopwatch Clock { get; }

    public IReadOnlyList<Sample> Samples => [.. _samples.OrderBy(s => s.SentMs)];

    public int Count(Func<Sample, bool> predicate) => _samples.Count(predicate);

    private async Task LoopAsync(int server, Uri url)
    {
        while (!_stop.IsCancellationRequested)
        {
            var sent = Clock.Elapsed.TotalMilliseconds;
            var status = 0;
            var body = string.Empty;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                timeout.CancelAfter(TimeSpan.FromMilliseconds(250));
                try
                {
                    using var response = await _http.GetAsync(url, timeout.Token);
                    body = await response.Content.ReadAsStringAsync(timeout.Token);
                    status = (int)response.StatusCode;
                }
                catch (HttpRequestException)
                {
                    // Refused or reset: a killed server is not a primary.
                }
                catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
                {
                    // No answer in time (a paused server): not 200.
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            _samples.Enqueue(new Sample(server, sent, Clock.Elapsed.TotalMilliseconds, status, Epoch(body), body));
            try
            {
                // Pacing between polls (about 500 a second per server), not a wait for anything.
                await Task.Delay(2, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static long Epoch(string body)
    {
        try
        {
            return body.Length > 0 && JsonDocument.Parse(body).RootElement.TryGetProperty("epoch", out var e) ? e.GetInt64() : 0;
        }
        catch (JsonException)
        {
            return 0;
        }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _http.Dispose();
        _stop.Dispose();
    }

    /// <summary>Fails if two servers answered 200 at once: the old primary's last 200 must have been sent before the new one's first 200 came back.</summary>
    public static (Sample LastOld, Sample FirstNew) AssertHandoverWithoutOverlap(IReadOnlyList<Sample> samples, int oldServer)
    {
        var ok = samples.Where(s => s.Status == (int)HttpStatusCode.OK).ToList();
        var firstNew = ok.Where(s => s.Server != oldServer).MinBy(s => s.ReceivedMs)
            ?? throw new Xunit.Sdk.XunitException($"no other server answered 200 on /primary; samples: {Summary(samples)}");
        var newServer = firstNew.Server;
        var lastOld = ok.Where(s => s.Server == oldServer).MaxBy(s => s.SentMs)
            ?? throw new Xunit.Sdk.XunitException($"server {oldServer} never answered 200 before the failure; samples: {Summary(samples)}");

        // A 200 from the old primary asked for after the new primary's 200 had arrived proves two primaries at once.
        Assert.True(lastOld.SentMs <= firstNew.ReceivedMs, $"two primaries at once: server {oldServer} answered 200 to a request sent at {lastOld.SentMs:0.0} ms, after server {newServer}'s 200 arrived at {firstNew.ReceivedMs:0.0} ms");
        Assert.True(firstNew.Epoch > lastOld.Epoch, $"the new primary's epoch {firstNew.Epoch} is not above the old one's {lastOld.Epoch}");

        // Only the two of them ever answered 200.
        var others = ok.Where(s => s.Server != oldServer && s.Server != newServer).ToList();
        Assert.True(others.Count == 0, $"a third server answered 200: {string.Join(", ", others.Take(3))}");
        return (lastOld, firstNew);
    }

    public static string Summary(IReadOnlyList<Sample> samples) =>
        string.Join("; ", samples.GroupBy(s => s.Server).OrderBy(g => g.Key).Select(g => $"server {g.Key}: " + string.Join(", ", g.GroupBy(s => s.Status).Select(x => $"{x.Count()}x{x.Key}"))));
}

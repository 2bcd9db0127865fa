using BenchmarkDotNet.Attributes;
using Understudy.Hosting;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>
/// Counting one client reply, which the server does on its loop for every request: by a label made from the status
/// (the way before round 16: ToString, ToLowerInvariant, a lookup by string) and by the series ServerMetrics looks up
/// once per status. The allocation column is the point: with one connection per client, every request pays it.
/// </summary>
[MemoryDiagnoser]
public class ServerMetricsBenchmarks
{
    private readonly ServerMetrics _metrics = new();

    [Benchmark(Baseline = true)]
    public void CountReplyByLabel() => _metrics.Responses.WithLabels(ResponseStatus.Ok.ToString().ToLowerInvariant()).Inc();

    [Benchmark]
    public void CountReplyBySeries() => _metrics.ResponsesWith(ResponseStatus.Ok).Inc();
}

using Understudy.IntegrationTests;

namespace Understudy.OperatorTests;

/// <summary>/metrics on the monitor and the servers: strict Prometheus text, with the metrics operators graph.</summary>
public class MetricsTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    [Fact]
    public async Task Metrics_of_monitor_and_servers_are_valid_prometheus_text_with_the_expected_metrics()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync(serverHttp: true);
        var client = test.NewClient();
        for (var i = 0; i < 200; i++)
        {
            await client.AppendAsync($"before-{i}", ct);
        }

        // One failover, so failure, promotion and duration metrics have something to count.
        var old = await test.PrimaryAsync();
        old.Process.Kill();
        var status = await test.WaitForAsync("metrics: promotion after kill -9", s => s.Primary is not null && s.Primary != old.Address.ToString() && s.Phase == "Stable");
        for (var i = 0; i < 100; i++)
        {
            await client.AppendAsync($"after-{i}", ct);
        }

        var monitorText = await Http.GetStringAsync(new Uri($"http://127.0.0.1:{test.Cluster.Options.HttpPort}/metrics"), ct);
        var monitor = PrometheusText.Parse(monitorText);
        output.WriteLine($"monitor: {monitor.Count} families");
        Assert.True(Value(monitor, "understudy_monitor_heartbeats_received_total") > 0);
        Assert.Equal("counter", monitor["understudy_monitor_failures_detected_total"].Type);
        // Counted as a crash (connection reset, port refused) or, if the starved machine let heartbeats lapse first, a timeout.
        Assert.True(Value(monitor, "understudy_monitor_failures_detected_total") >= 1, "the kill -9 is counted as a failure");
        Assert.All(monitor["understudy_monitor_failures_detected_total"].Samples, f => Assert.Contains(f.Labels["how"], new[] { "crash", "timeout" }));
        Assert.True(Value(monitor, "understudy_monitor_promotions_total") >= 1);
        Assert.Equal("histogram", monitor["understudy_monitor_promotion_duration_seconds"].Type);
        Assert.True(Value(monitor, "understudy_monitor_promotion_duration_seconds_count") >= 1);
        Assert.Equal(status.InSync.Count, Value(monitor, "understudy_monitor_in_sync_size"));
        Assert.True(Value(monitor, "understudy_monitor_epoch") >= status.Epoch);
        Assert.True(Value(monitor, "understudy_monitor_client_subscriptions") >= 1);
        Assert.Equal("gauge", monitor["understudy_monitor_lease_remaining_seconds"].Type);

        var primary = await test.PrimaryAsync();
        foreach (var s in test.Cluster.Servers.Where(s => s.Process.Running))
        {
            var text = await Http.GetStringAsync(new Uri($"http://127.0.0.1:{test.Cluster.Options.HttpPortOf(s.Number)}/metrics"), ct);
            var server = PrometheusText.Parse(text);
            output.WriteLine($"server {s.Number}: {server.Count} families");
            Assert.True(Value(server, "understudy_server_log_commit_index") >= 300, $"server {s.Number} commit index");
            Assert.True(Value(server, "understudy_server_log_written_bytes_total") > 0);
            Assert.True(Value(server, "understudy_server_fsyncs_total") > 0);
            Assert.True(Value(server, "understudy_server_fsync_seconds_total") > 0);
            Assert.Equal("histogram", server["understudy_server_replication_batch_entries"].Type);
            Assert.Equal("counter", server["understudy_server_client_writes_total"].Type);
            Assert.True(server.ContainsKey("understudy_server_replication_round_trip_seconds"));
            if (s == primary)
            {
                Assert.True(Value(server, "understudy_server_client_writes_total") >= 100, "the new primary took the writes after the failover");
                Assert.True(Value(server, "understudy_server_replication_batch_entries_count") > 0);
                var roundTrips = server["understudy_server_replication_round_trip_seconds"].Samples;
                Assert.Contains(roundTrips, r => r.Labels.TryGetValue("backup", out var b) && b != primary.Address.ToString() && r.Value > 0);
                Assert.Equal(1, Value(server, "understudy_server_is_primary"));
            }
        }
    }

    [Theory]
    [InlineData("# TYPE a counter\na 1\n", true)]
    [InlineData("# HELP a Some help\n# TYPE a gauge\na{x=\"1\",y=\"q\\\"\\\\\\n\"} -2.5e3\n", true)]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", true)]
    [InlineData("# TYPE a counter\na 1", false)]
    [InlineData("# TYPE 1a counter\n1a 1\n", false)]
    [InlineData("# TYPE a counter\na -1\n", false)]
    [InlineData("# TYPE a gauge\na{x=1} 1\n", false)]
    [InlineData("# TYPE a gauge\na{x=\"\\t\"} 1\n", false)]
    [InlineData("# TYPE a gauge\na one\n", false)]
    [InlineData("# TYPE a gauge\na 1\na 2\n", false)]
    [InlineData("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 1\n", false)]
    [InlineData("# TYPE a gauge\n# TYPE a counter\na 1\n", false)]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n", false)]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n", false)]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n", false)]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", false)]
    [InlineData("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", false)]
    public void The_parser_is_strict(string text, bool valid)
    {
        if (valid)
        {
            PrometheusText.Parse(text);
        }
        else
        {
            Assert.Throws<FormatException>(() => PrometheusText.Parse(text));
        }
    }

    private static double Value(Dictionary<string, PromFamily> families, string sample, params (string Name, string Value)[] labels)
    {
        var matches = families.Values.SelectMany(f => f.Samples)
            .Where(s => s.Name == sample && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value))
            .ToList();
        Assert.True(matches.Count > 0, $"no sample {sample}{(labels.Length > 0 ? " with " + string.Join(",", labels) : string.Empty)}; families: {string.Join(", ", families.Keys.Order())}");
        return matches.Sum(m => m.Value);
    }
}

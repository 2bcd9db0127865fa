using Understudy.Orchestration.Clusters;

namespace Understudy.IntegrationTests;

/// <summary>
/// Every port a run hands to its children is distinct: a port is checked free long before its child binds it, so two
/// choices in one process could hand out the same number (round 19's soak gave server 1 the monitor's port as its HTTP
/// port, and server 1 exited at start).
/// </summary>
public sealed class PortReservationTests
{
    [Fact]
    public async Task Every_port_chosen_in_one_process_is_distinct_across_choices_threads_and_layouts()
    {
        var data = Path.Combine(Path.GetTempPath(), "understudy-ports-never-created");

        // Four threads at once, each choosing as tests and benches do: whole clusters (a monitor group with HTTP, servers
        // with HTTP), a cluster then more ports in a second call (the soak's old way), `up`'s base-port layout, single ports.
        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            var ports = new List<(int Port, string Who)>();
            for (var i = 0; i < 10; i++)
            {
                ports.AddRange(PortsOf(LocalClusterOptions.OnFreePorts(3, data, monitorHttp: true, monitors: 3, serverHttp: true), $"group cluster {i}"));
                ports.AddRange(PortsOf(LocalClusterOptions.OnFreePorts(3, data, serverHttp: true), $"soak cluster {i}"));
                ports.AddRange(LocalClusterOptions.FreePorts(3).Select(p => (p, $"second choice {i}")));
                var basePort = PortReservations.TakeBase(servers: 3);
                ports.AddRange(Enumerable.Range(0, 3).SelectMany(n => new[] { (basePort - n, $"up server {n + 1} {i}"), (basePort - n + 100, $"up server {n + 1} HTTP {i}") }));
                ports.Add((LocalClusterOptions.FreePorts(1)[0], $"single {i}"));
            }

            return ports;
        }, TestContext.Current.CancellationToken)));

        var all = runs.SelectMany(r => r).ToList();
        var twice = all.GroupBy(p => p.Port).Where(g => g.Count() > 1).Select(g => $"{g.Key} ({string.Join(", ", g.Select(p => p.Who))})").ToList();
        Assert.True(twice.Count == 0, $"{twice.Count} of {all.Count} ports were handed out twice: {string.Join("; ", twice.Take(10))}");
        Assert.All(all, p => Assert.InRange(p.Port, 1024, 65535));
    }

    [Fact]
    public void A_cluster_on_free_ports_with_server_http_gives_every_server_its_own_http_port()
    {
        var options = LocalClusterOptions.OnFreePorts(3, Path.Combine(Path.GetTempPath(), "understudy-ports-never-created"), monitorHttp: true, serverHttp: true);

        Assert.True(options.ServerHttp);
        var ports = PortsOf(options, "cluster").ToList();
        Assert.Equal(3 + 3 + 3, ports.Count); // servers, their HTTP, the monitor's heartbeat, client API and dashboard
        Assert.Equal(ports.Count, ports.Select(p => p.Port).Distinct().Count());
    }

    /// <summary>Every port the cluster's processes listen on: servers and their HTTP, each monitor's heartbeat, client API, Raft (in a group) and dashboard.</summary>
    private static IEnumerable<(int Port, string Who)> PortsOf(LocalClusterOptions options, string run)
    {
        for (var n = 1; n <= options.Servers; n++)
        {
            yield return (options.PortOf(n), $"{run} server {n}");
            if (options.HttpPortOf(n) > 0)
            {
                yield return (options.HttpPortOf(n), $"{run} server {n} HTTP");
            }
        }

        for (var n = 1; n <= options.Monitors; n++)
        {
            var m = options.MonitorPortsOf(n);
            foreach (var port in m.All(group: options.Monitors > 1))
            {
                yield return (port, $"{run} monitor {n}");
            }
        }
    }
}

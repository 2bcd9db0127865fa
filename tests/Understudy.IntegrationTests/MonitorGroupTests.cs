using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Core.Monitor;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>
/// Monitor hosts in this process on a coordinator the test controls (<see cref="FakeMonitorGroup"/>), so the group's
/// agreement (who is active, quorum or not, a refused commit) happens exactly when the test says.
/// </summary>
public sealed class MonitorGroupTests
{
    private static readonly Uri Health = new("/health", UriKind.Relative);
    private static readonly Uri Metrics = new("/metrics", UriKind.Relative);
    private static readonly Uri Cluster = new("/cluster", UriKind.Relative);

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static async Task<(HttpStatusCode Status, string Body)> GetAsync(HttpClient http, Uri path, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(path, cancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
    }

    /// <summary>Polls /health until it answers <paramref name="expected"/>; that answer, or a timeout naming the phase and what it saw.</summary>
    private static Task<(HttpStatusCode Status, string Body)> HealthUntilAsync(HttpClient http, HttpStatusCode expected, string phase) =>
        Poll.ForAsync(
            ct => GetAsync(http, Health, ct),
            r => r.Status == expected,
            Poll.DefaultTimeout,
            phase,
            r => $"expected {(int)expected}, saw {(int)r.Status} {r.Body}",
            Cancel);

    /// <summary>Tolerant timings for a loaded 2-core machine: suspect after 1 s of silence, leases of 1.5 s.</summary>
    private static MonitorOptions Timings => new() { FailureTimeout = TimeSpan.FromSeconds(1), LeaseDuration = TimeSpan.FromMilliseconds(1500) };

    [Fact]
    public async Task Three_monitors_agree_on_the_active_one_the_term_and_the_members_and_follow_a_change()
    {
        await using var group = await MonitorGroup.StartAsync(3);
        group.Fake.MakeActive(group.Hosts[0].HeartbeatAddress);

        await group.WaitAllAsync("first term", s => s.Active == group.Hosts[0].HeartbeatAddress.ToString() && s.Term == 1);
        foreach (var host in group.Hosts)
        {
            var view = (await host.StatusAsync()).Monitors!;
            Assert.Equal(3, view.Members.Count);
            Assert.Equal([.. group.Hosts.Select(h => h.HeartbeatAddress.ToString()).Order()], view.Members.Select(m => m.Address));
            Assert.All(view.Members, m => Assert.Equal("up", m.State));
            Assert.Single(view.Members, m => m.Self);
            Assert.Equal(host.HeartbeatAddress.ToString(), view.Self);
            Assert.Single(view.Members, m => m.Active);
            Assert.True(view.HasQuorum);
        }

        Assert.Single(group.Hosts, h => h.Leadership.IsActive);

        group.Fake.MakeActive(group.Hosts[2].HeartbeatAddress);
        await group.WaitAllAsync("second term", s => s.Active == group.Hosts[2].HeartbeatAddress.ToString() && s.Term == 2);
        Assert.Single(group.Hosts, h => h.Leadership.IsActive);
        Assert.True(group.Hosts[2].Leadership.IsActive, "the monitor made active must say so");
    }

    [Fact]
    public async Task A_monitor_that_becomes_active_with_a_stale_copy_is_active_only_once_it_has_the_committed_configuration()
    {
        await using var group = await MonitorGroup.StartAsync(3);
        var (first, second) = (group.Hosts[0], group.Hosts[1]);
        group.Fake.MakeActive(first.HeartbeatAddress);
        await Poll.UntilAsync(async _ => await first.ReadAsync(n => n.IsActive), Poll.DefaultTimeout, "monitor 1 active", _ => Task.FromResult("not yet"), TestContext.Current.CancellationToken);

        // Monitor 2 misses a committed change: its copy is stale when it wins the next term.
        group.Fake.Member(second.HeartbeatAddress).DeafToConfig = true;
        var before = group.Fake.Config;
        var next = before with { Version = before.Version + 1 };
        Assert.True((await group.Fake.Member(first.HeartbeatAddress).CompareAndSetAsync(before.Version, next, TestContext.Current.CancellationToken)).Committed);
        Assert.Equal(before.Version, await second.ReadAsync(n => n.Config.Version));

        group.Fake.MakeActive(second.HeartbeatAddress);
        var samples = new List<(bool Active, long Version)>();
        await Poll.UntilAsync(
            async _ =>
            {
                var sample = await second.ReadAsync(n => (n.IsActive, n.Config.Version));
                samples.Add(sample);
                return sample.IsActive;
            },
            Poll.DefaultTimeout,
            "monitor 2 active",
            _ => Task.FromResult(string.Join(", ", samples.TakeLast(5))),
            TestContext.Current.CancellationToken);

        // Acting on the stale copy could renew a replaced primary's lease: active only with the committed version.
        Assert.All(samples.Where(s => s.Active), s => Assert.True(s.Version >= next.Version, $"active with configuration version {s.Version}, committed {next.Version}"));
    }

    [Fact]
    public async Task A_monitor_without_a_quorum_answers_health_with_503_and_the_reason_and_its_gauges_say_so()
    {
        await using var group = await MonitorGroup.StartAsync(3, http: true);
        var first = group.Hosts[0];
        group.Fake.MakeActive(first.HeartbeatAddress);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{first.Options.HttpPort}") };

        var healthy = await HealthUntilAsync(http, HttpStatusCode.OK, "health of the active monitor with its quorum");
        using (var body = JsonDocument.Parse(healthy.Body))
        {
            Assert.Equal("active", body.RootElement.GetProperty("role").GetString());
            Assert.True(body.RootElement.GetProperty("quorum").GetBoolean());
        }

        // The dashboard has the group's panel, and its script draws it from the status's monitors object.
        Assert.Contains("data-testid=\"monitors\"", await http.GetStringAsync(new Uri("/", UriKind.Relative), Cancel), StringComparison.Ordinal);
        Assert.Contains("status.monitors", await http.GetStringAsync(new Uri("/dashboard.js", UriKind.Relative), Cancel), StringComparison.Ordinal);

        var metrics = await http.GetStringAsync(Metrics, Cancel);
        Assert.Contains("understudy_monitor_active 1", metrics, StringComparison.Ordinal);
        Assert.Contains("understudy_monitor_term 1", metrics, StringComparison.Ordinal);
        Assert.Contains("understudy_monitor_group_members{state=\"up\"} 3", metrics, StringComparison.Ordinal);

        group.Fake.Isolate(first.HeartbeatAddress);

        var refused = await HealthUntilAsync(http, HttpStatusCode.ServiceUnavailable, "health of the isolated monitor");
        using (var body = JsonDocument.Parse(refused.Body))
        {
            Assert.Equal("no-quorum", body.RootElement.GetProperty("status").GetString());
            var reason = body.RootElement.GetProperty("reason").GetString() ?? string.Empty;
            Assert.Contains("quorum", reason, StringComparison.Ordinal);
            Assert.Contains(group.Hosts[1].HeartbeatAddress.ToString(), reason, StringComparison.Ordinal);
        }

        metrics = await http.GetStringAsync(Metrics, Cancel);
        Assert.Contains("understudy_monitor_group_members{state=\"unreachable\"} 2", metrics, StringComparison.Ordinal);
        Assert.Contains("understudy_monitor_group_members{state=\"up\"} 1", metrics, StringComparison.Ordinal);
        var cluster = ClusterStatus.FromJson(await http.GetByteArrayAsync(Cluster, Cancel));
        Assert.False(cluster.Monitors!.HasQuorum);
    }

    [Fact]
    public async Task A_commit_refused_because_leadership_moved_is_a_refused_proposal_not_a_fatal_error()
    {
        await using var group = await MonitorGroup.StartAsync(1);
        var monitor = group.Hosts[0];
        group.Fake.MakeActive(monitor.HeartbeatAddress);
        group.Fake.RefuseNext(1);

        await using var server = await group.StartServerAsync(monitor);

        // The first proposal (forming the cluster) is refused; the monitor must carry on and form it on a retry.
        await Poll.UntilAsync(
            () => group.Fake.Config.Primary == server.Address,
            Poll.DefaultTimeout,
            "forming the cluster after a refused commit",
            () => $"expected {server.Address} primary in the group's configuration, saw {group.Fake.Config}; refusals {group.Fake.Refusals}; fatal: {(monitor.Fatal.IsCompleted ? monitor.Fatal.Result : "no")}",
            Cancel);
        Assert.Equal(1, group.Fake.Refusals);
        Assert.False(monitor.Fatal.IsCompleted, "a refused commit must not stop the monitor");
    }

    [Fact]
    public async Task An_isolated_active_monitor_cannot_extend_the_primary_lease_beyond_its_confirmed_leadership()
    {
        await using var group = await MonitorGroup.StartAsync(3);
        var first = group.Hosts[0];
        group.Fake.MakeActive(first.HeartbeatAddress);
        await using var server = await group.StartServerAsync(first);
        await Poll.UntilAsync(
            async ct => await server.ReadAsync(n => n.IsServing && n.HasLease),
            Poll.DefaultTimeout,
            "the server serving under the active monitor's lease",
            async ct => (await first.StatusAsync()).ToJson(),
            Cancel);

        group.Fake.Isolate(first.HeartbeatAddress);

        // Whatever it granted before losing the quorum runs out; it may not grant again once its confirmed leadership
        // has passed, so the server loses its lease and the monitor records why.
        await Poll.UntilAsync(
            async ct => !await server.ReadAsync(n => n.HasLease),
            Poll.DefaultTimeout,
            "the server's lease running out after its monitor was isolated",
            async ct => $"server still holds a lease; monitor lease remaining {await first.ReadAsync(n => n.LeaseRemainingMs)} ms",
            Cancel);
        await Poll.UntilAsync(
            async ct => await first.ReadAsync(n => n.LeaseRemainingMs) == 0,
            Poll.DefaultTimeout,
            "the isolated monitor's own record of the lease running out",
            async ct => $"monitor lease remaining {await first.ReadAsync(n => n.LeaseRemainingMs)} ms",
            Cancel);
        Assert.False(await server.ReadAsync(n => n.HasLease), "the server must not be granted a lease again by an isolated monitor");
        var events = await first.EventsAsync();
        Assert.Contains(events, e => e.Kind == nameof(MonitorEventKind.LeadershipUnconfirmed));
    }

    [Fact]
    public async Task Restarting_the_active_monitor_of_a_group_keeps_the_primary_and_the_epoch()
    {
        await using var group = await MonitorGroup.StartAsync(3);
        var first = group.Hosts[0];
        group.Fake.MakeActive(first.HeartbeatAddress);
        await using var a = await group.StartServerAsync(first);
        await using var b = await group.StartServerAsync(first);
        var formed = await Poll.ForAsync(
            _ => first.StatusAsync(),
            s => s.Primary is not null && s.InSync.Count == 2,
            Poll.DefaultTimeout,
            "forming the cluster",
            s => $"expected a primary and two in sync, saw {s?.ToJson()}",
            Cancel);

        var restarted = await group.RestartAsync(0);
        group.Fake.MakeActive(restarted.HeartbeatAddress);

        var again = await Poll.ForAsync(
            _ => restarted.StatusAsync(),
            s => s.Members.Count(m => m.State == "alive") == 2 && s.Phase == nameof(FailoverPhase.Stable) && s.Monitors!.IsActive,
            Poll.DefaultTimeout,
            "both servers back with the restarted active monitor",
            s => $"expected two alive, a stable phase, active; saw {s?.ToJson()}",
            Cancel);
        Assert.Equal(formed.Primary, again.Primary);
        Assert.Equal(formed.Epoch, again.Epoch);
        Assert.Equal(2, again.Monitors!.Term);
    }

    [Fact]
    public async Task A_group_of_one_on_the_file_keeps_the_primary_and_epoch_across_a_monitor_restart()
    {
        using var folder = new TempFolder();
        var ports = LocalClusterOptions.FreePorts(4);
        var options = new MonitorHostOptions
        {
            HeartbeatListen = new NodeAddress("127.0.0.1", ports[0]),
            ClientListen = new NodeAddress("127.0.0.1", ports[1]),
            HttpPort = 0,
            DataDirectory = Path.Combine(folder.Path, "monitor"),
            Protocol = Timings,
        };
        var monitor = await MonitorHost.StartAsync(options, NullLoggerFactory.Instance, Cancel);
        ServerHost? a = null;
        ServerHost? b = null;
        try
        {
            a = await MonitorGroup.StartServerAsync(folder.Path, ports[2], monitor.HeartbeatAddress);
            b = await MonitorGroup.StartServerAsync(folder.Path, ports[3], monitor.HeartbeatAddress);
            var formed = await Poll.ForAsync(
                _ => monitor.StatusAsync(),
                s => s!.Primary is not null && s.InSync.Count == 2,
                Poll.DefaultTimeout,
                "forming the cluster",
                s => $"expected a primary and two in sync, saw {s?.ToJson()}",
                Cancel);
            Assert.Equal("file", formed!.Monitors!.Coordinator);
            Assert.True(formed.Monitors.IsActive);

            await monitor.DisposeAsync();
            monitor = await MonitorHost.StartAsync(options, NullLoggerFactory.Instance, Cancel);

            var again = await Poll.ForAsync(
                _ => monitor.StatusAsync(),
                s => s!.Members.Count(m => m.State == "alive") == 2 && s.Phase == nameof(FailoverPhase.Stable),
                Poll.DefaultTimeout,
                "both servers back with the restarted monitor",
                s => $"expected two alive and a stable phase, saw {s?.ToJson()}",
                Cancel);
            Assert.Equal(formed.Primary, again!.Primary);
            Assert.Equal(formed.Epoch, again.Epoch);
        }
        finally
        {
            await monitor.DisposeAsync();
            if (a is not null)
            {
                await a.DisposeAsync();
            }

            if (b is not null)
            {
                await b.DisposeAsync();
            }
        }
    }
}

/// <summary>Monitor hosts on one <see cref="FakeMonitorGroup"/>, on free ports, in a temp folder; all stopped on dispose.</summary>
internal sealed class MonitorGroup : IAsyncDisposable
{
    private readonly TempFolder _folder = new();

    private MonitorGroup(FakeMonitorGroup fake) => Fake = fake;

    public FakeMonitorGroup Fake { get; }

    public List<MonitorHost> Hosts { get; } = [];

    public static async Task<MonitorGroup> StartAsync(int size, bool http = false)
    {
        var ports = LocalClusterOptions.FreePorts(size * 3);
        var heartbeats = Enumerable.Range(0, size).Select(i => new NodeAddress("127.0.0.1", ports[i * 3])).ToList();
        var group = new MonitorGroup(new FakeMonitorGroup(heartbeats));
        try
        {
            for (var i = 0; i < size; i++)
            {
                var options = new MonitorHostOptions
                {
                    HeartbeatListen = heartbeats[i],
                    ClientListen = new NodeAddress("127.0.0.1", ports[(i * 3) + 1]),
                    HttpPort = http ? ports[(i * 3) + 2] : 0,
                    DataDirectory = Path.Combine(group._folder.Path, $"monitor-{i + 1}"),
                    Protocol = new MonitorOptions { FailureTimeout = TimeSpan.FromSeconds(1), LeaseDuration = TimeSpan.FromMilliseconds(1500) },
                };
                var host = await MonitorHost.StartAsync(options, NullLoggerFactory.Instance, (self, _) => group.Fake.Join(self), TestContext.Current.CancellationToken);
                group.Hosts.Add(host);
                if (http)
                {
                    group._apps.Add(await HttpEndpoints.StartMonitorAsync(host, null, TestContext.Current.CancellationToken));
                }
            }

            return group;
        }
        catch
        {
            await group.DisposeAsync();
            throw;
        }
    }

    private readonly List<Microsoft.AspNetCore.Builder.WebApplication> _apps = [];

    /// <summary>Stops monitor <paramref name="index"/> and starts it again on the same ports and folder.</summary>
    public async Task<MonitorHost> RestartAsync(int index)
    {
        var old = Hosts[index];
        await old.DisposeAsync();
        var host = await MonitorHost.StartAsync(old.Options, NullLoggerFactory.Instance, (self, _) => Fake.Join(self), TestContext.Current.CancellationToken);
        Hosts[index] = host;
        return host;
    }

    /// <summary>Waits until every monitor's view of the group satisfies <paramref name="condition"/>.</summary>
    public Task WaitAllAsync(string phase, Func<MonitorGroupStatus, bool> condition) =>
        Poll.UntilAsync(
            () => Hosts.All(h => condition(h.GroupStatus())),
            Poll.DefaultTimeout,
            phase,
            () => "views: " + string.Join(" | ", Hosts.Select(h => JsonSerializer.Serialize(h.GroupStatus(), ClusterStatus.Json))),
            TestContext.Current.CancellationToken);

    /// <summary>A server heartbeating <paramref name="monitor"/>, on a free port.</summary>
    public Task<ServerHost> StartServerAsync(MonitorHost monitor) =>
        StartServerAsync(_folder.Path, LocalClusterOptions.FreePorts(1)[0], monitor.HeartbeatAddress);

    public static Task<ServerHost> StartServerAsync(string folder, int port, NodeAddress monitor) =>
        ServerHost.StartAsync(
            new ServerHostOptions
            {
                Listen = new NodeAddress("127.0.0.1", port),
                Monitor = monitor,
                DataDirectory = Path.Combine(folder, $"server-{port}"),
            },
            NullLoggerFactory.Instance,
            TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.DisposeAsync();
        }

        foreach (var host in Hosts)
        {
            await host.DisposeAsync();
        }

        _folder.Dispose();
    }
}

/// <summary>A temp folder deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-group-");

    public string Path => _folder.FullName;

    public void Dispose()
    {
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A host still closing a file; the OS cleans temp folders eventually.
        }
    }
}

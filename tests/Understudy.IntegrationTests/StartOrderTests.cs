using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Workloads;

namespace Understudy.IntegrationTests;

/// <summary>The original broke unless started monitor, then servers, then client: every order works here.</summary>
public class StartOrderTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Client_started_before_the_servers_gets_its_writes_acknowledged()
    {
        await using var test = await TestCluster.StartAsync(start: false, monitorArgs: TestCluster.PatientMonitorTimings);
        await using var work = new Workload();

        // Nothing runs yet: the client keeps trying the monitor, its call waiting within its deadline.
        var client = test.NewClient(TimeSpan.FromSeconds(60));
        var first = work.Recorder.AppendAsync(client, 1, "sent-before-anything-ran", TestContext.Current.CancellationToken);
        Assert.False(first.IsCompleted, "nothing is running, yet the append completed");

        test.Cluster.Monitor.Start();
        await Poll.UntilAsync(async ct => await test.Cluster.StatusAsync(ct) is not null, Poll.DefaultTimeout, "the monitor answers", _ => Task.FromResult(test.Logs()), TestContext.Current.CancellationToken);
        Assert.False(first.IsCompleted, "no server is running, yet the append completed");

        foreach (var s in test.Cluster.Servers)
        {
            s.Process.Start();
        }

        var seq = await first.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, seq);
        Assert.Equal(2, await work.Recorder.AppendAsync(client, 1, "sent-once-up", TestContext.Current.CancellationToken));
        await test.WaitHealthyAsync("every server joined");
        work.AssertValid(await client.ReadAllAsync(TestContext.Current.CancellationToken), output);
    }

    [Fact]
    public async Task Servers_started_before_the_monitor_form_a_cluster()
    {
        await using var test = await TestCluster.StartAsync(start: false, monitorArgs: TestCluster.PatientMonitorTimings);
        foreach (var s in test.Cluster.Servers)
        {
            s.Process.Start();
        }

        // Each server is up and looking for the monitor before the monitor exists.
        foreach (var s in test.Cluster.Servers)
        {
            await TestCluster.WaitForLogLineAsync(s.Process, line => line.Contains("waiting for the monitor", StringComparison.Ordinal), $"{s.Process.Name} runs without a monitor");
        }

        test.Cluster.Monitor.Start();
        var status = await test.WaitHealthyAsync("the monitor started last forms the cluster");
        Assert.Equal(test.Cluster.Servers.Count, status.InSync.Count);
        Assert.Equal(1, status.Members.Count(m => m.Role == "primary"));
        await WriteAndReadBackAsync(test, 20);
    }

    [Fact]
    public async Task Servers_started_one_by_one_join_as_backups_and_catch_up()
    {
        await using var test = await TestCluster.StartAsync(start: false, monitorArgs: TestCluster.PatientMonitorTimings);
        await using var work = new Workload();
        test.Cluster.Monitor.Start();
        var firstServer = test.Cluster.Server(1);
        firstServer.Process.Start();
        var status = await test.WaitHealthyAsync("the monitor and the first server alone");
        Assert.Equal(firstServer.Address.ToString(), status.Primary);

        var client = test.NewClient();
        work.StartWriter(client, "one-by-one");
        await work.WaitForAckedAsync(50, "writes with one server");
        foreach (var joining in test.Cluster.Servers.Skip(1))
        {
            var acked = work.Recorder.Acknowledged;
            joining.Process.Start();
            status = await test.WaitForAsync(
                $"{joining.Address} joins as an in-sync backup while the client writes",
                s => s.InSync.Contains(joining.Address.ToString()) && TestCluster.Member(s, joining) is { Role: "backup", State: "alive" });
            Assert.Equal(firstServer.Address.ToString(), status.Primary);
            await work.WaitForAckedAsync(acked + 50, $"writes after {joining.Address} joined");
        }

        await work.StopAsync(TestContext.Current.CancellationToken);
        status = await test.WaitForAsync(
            "every server holds the primary's whole log",
            s => s.InSync.Count == test.Cluster.Servers.Count && s.Members.Select(m => m.LogEnd).Distinct().Count() == 1);
        output.WriteLine(status.ToJson());
        work.AssertValid(await client.ReadAllAsync(TestContext.Current.CancellationToken), output);
    }

    [Fact]
    public async Task Servers_started_in_reverse_with_the_monitor_between_them_form_one_cluster()
    {
        await using var test = await TestCluster.StartAsync(start: false, monitorArgs: TestCluster.PatientMonitorTimings);
        var servers = test.Cluster.Servers.Reverse().ToList();
        servers[0].Process.Start();
        await TestCluster.WaitForLogLineAsync(servers[0].Process, line => line.Contains("waiting for the monitor", StringComparison.Ordinal), $"{servers[0].Process.Name} runs without a monitor");
        test.Cluster.Monitor.Start();
        await test.WaitForAsync("the first server is primary", s => s.Primary == servers[0].Address.ToString() && s.Phase == "Stable");
        foreach (var s in servers.Skip(1))
        {
            s.Process.Start();
            await test.WaitForAsync($"{s.Address} joins the in-sync set", st => st.InSync.Contains(s.Address.ToString()));
        }

        var status = await test.WaitHealthyAsync("three servers, one cluster");
        Assert.Equal(servers[0].Address.ToString(), status.Primary);
        await WriteAndReadBackAsync(test, 20);
    }

    private async Task WriteAndReadBackAsync(TestCluster test, int count)
    {
        await using var work = new Workload();
        var client = test.NewClient();
        for (var i = 0; i < count; i++)
        {
            Assert.NotNull(await work.Recorder.AppendAsync(client, 1, $"w-{i}", TestContext.Current.CancellationToken));
        }

        var log = await client.ReadAllAsync(TestContext.Current.CancellationToken);
        Assert.Equal(count, log.Count);
        work.AssertValid(log, output);
    }
}

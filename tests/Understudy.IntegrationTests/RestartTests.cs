using System.Globalization;
using System.Text.RegularExpressions;
using Understudy.Orchestration.Workloads;

namespace Understudy.IntegrationTests;

/// <summary>Killed processes come back from their own folders: a server rejoins, a whole cluster restarts.</summary>
public partial class RestartTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("backup")]
    [InlineData("primary")]
    public async Task Killed_server_restarts_and_rejoins_as_an_in_sync_backup(string which)
    {
        await using var test = await TestCluster.StartAsync();
        await using var work = new Workload();
        work.StartWriter(test.NewClient(), "r");
        await work.WaitForAckedAsync(100, "writes before the kill");

        var primary = await test.PrimaryAsync();
        var victim = which == "primary" ? primary : test.ServersExcept(primary).First();
        var healthy = await test.WaitForAsync($"{victim.Address} in sync before the kill", s => s.InSync.Contains(victim.Address.ToString()));
        var ackedBeforeKill = work.Recorder.Acknowledged;
        victim.Process.Kill();
        Assert.True(victim.Process.WaitForExit(TimeSpan.FromSeconds(20)), "the killed server exits");

        await test.WaitForAsync(
            $"the cluster carries on without the killed {which}",
            s => s.Primary is not null && s.Primary != victim.Address.ToString() && !s.InSync.Contains(victim.Address.ToString()) && s.Phase == "Stable");
        await work.WaitForAckedAsync(ackedBeforeKill + 100, $"writes while the {which} is down");

        victim.Process.Start();
        await test.WaitForAsync(
            $"the restarted {which} is back in the in-sync set while the client writes",
            s => s.InSync.Contains(victim.Address.ToString()) && TestCluster.Member(s, victim) is { Role: "backup", State: "alive" });
        await work.StopAsync(TestContext.Current.CancellationToken);
        var status = await test.WaitForAsync(
            $"the restarted {which} has the primary's whole log",
            s => s.Primary is { } p && p != victim.Address.ToString() && s.InSync.Contains(victim.Address.ToString()) &&
                 TestCluster.Member(s, victim) is { Role: "backup" } m && m.LogEnd == s.Members.Single(x => x.Address == p).LogEnd && m.LogEnd > 0);
        output.WriteLine(status.ToJson());
        Assert.True(status.Epoch >= healthy.Epoch);

        // It came back from its own folder: the second start recovered at least every message acknowledged before the kill.
        var starts = StartingLine().Matches(TestCluster.ProcessLog(victim.Process)).ToList();
        Assert.True(starts.Count == 2, $"expected two starts in {victim.Process.Name}'s log, found {starts.Count}:\n{TestCluster.ProcessLog(victim.Process)}");
        var recovered = long.Parse(starts[1].Groups["entries"].Value, CultureInfo.InvariantCulture);
        Assert.True(recovered >= ackedBeforeKill, $"the restarted {which} recovered {recovered} log entries from its folder, fewer than the {ackedBeforeKill} messages acknowledged before the kill");
        output.WriteLine($"{which} {victim.Address}: {recovered} entries recovered; {ackedBeforeKill} acknowledged before the kill");

        var log = await test.NewClient().ReadAllAsync(TestContext.Current.CancellationToken);
        work.AssertValid(log, output);
    }

    [Fact]
    public async Task Kill_9_of_every_process_then_restart_loses_nothing_acknowledged()
    {
        await using var test = await TestCluster.StartAsync();
        await using var work = new Workload();
        // Patient enough for four processes to restart on a busy machine while its call waits.
        var client = test.NewClient(TimeSpan.FromSeconds(60));
        work.StartWriter(client, "k");
        await work.WaitForAckedAsync(150, "writes before the kill");

        // Everything at once, mid-write: the monitor and every server.
        var processes = test.Cluster.Servers.Select(s => s.Process).Append(test.Cluster.Monitor).ToList();
        foreach (var p in processes)
        {
            p.Kill();
        }

        foreach (var p in processes)
        {
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(20)), $"{p.Name} exits after kill -9");
        }

        var ackedAtKill = work.Recorder.Acknowledged;
        var inFlight = work.Recorder.InFlight;
        test.Cluster.StartAll();
        var status = await test.WaitHealthyAsync("restart of every process with the same data folders");
        output.WriteLine(status.ToJson());
        await work.WaitForAckedAsync(ackedAtKill + 50, "writes after the restart");
        await work.StopAsync(TestContext.Current.CancellationToken);

        var log = await test.NewClient().ReadAllAsync(TestContext.Current.CancellationToken);
        var result = work.AssertValid(log, output);
        Assert.True(result.Stats.Failed + result.Stats.Indeterminate == 0, $"the writer's call across the outage should have been acknowledged after the restart; errors: {work.Recorder.LastErrors()}");
        foreach (var value in inFlight)
        {
            Assert.Contains(work.Recorder.Acknowledgements, a => a.Value == value);
        }

        // New writes take the next sequence numbers after everything already there.
        var next = await work.Recorder.AppendAsync(client, 1, "after-the-restart", TestContext.Current.CancellationToken);
        Assert.Equal(log.Count + 1, next);
    }

    [GeneratedRegex(@"starting: (?<entries>\d+) entries recovered")]
    private static partial Regex StartingLine();
}

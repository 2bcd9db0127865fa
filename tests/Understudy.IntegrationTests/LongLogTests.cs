using System.Globalization;
using System.Text.RegularExpressions;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Polling;

namespace Understudy.IntegrationTests;

/// <summary>
/// Long-running servers as real processes with tiny thresholds: a one-entry log window (old entries are read from
/// disk), a snapshot every 100 entries, and retention of the newest 500 messages (with a retention age and a session
/// idle timeout far longer than the test, so the CLI parses them and they remove nothing).
/// </summary>
public partial class LongLogTests(ITestOutputHelper output)
{
    private const int Writes = 2500;
    private const int Kept = 500;

    [Fact]
    public async Task Retention_keeps_exactly_the_newest_messages_reads_below_the_window_come_from_disk_and_a_restart_reads_only_the_tail()
    {
        await using var test = await TestCluster.StartAsync(serverArgs: ["--snapshot-every", "100", "--log-window", "1", "--retention-messages", Kept.ToString(CultureInfo.InvariantCulture), "--retention-age", "7d", "--session-idle-timeout", "30m"]);
        var client = test.NewClient(TimeSpan.FromSeconds(30));
        var ct = TestContext.Current.CancellationToken;

        // Sent in parallel batches: one client pipelines them, so this takes seconds, not one fsync round per write.
        for (var start = 1; start <= Writes; start += 100)
        {
            await Task.WhenAll(Enumerable.Range(start, 100).Select(i => client.AppendAsync($"w{i}", ct)));
        }

        Assert.Equal(Writes, await client.CountAsync(ct));

        // Exactly the newest 500 are kept: a read before them is told where they start, and they all read back.
        var removed = await Assert.ThrowsAsync<MessagesRemovedException>(() => client.ReadAsync(1, 10, ct));
        Assert.Equal(Writes - Kept + 1, removed.FirstRetained);
        var kept = new List<SequencedMessage>();
        while (await client.ReadAsync(Writes - Kept + 1 + kept.Count, 10_000, ct) is { Count: > 0 } page)
        {
            kept.AddRange(page);
        }

        Assert.Equal(Kept, kept.Count);
        Assert.Equal(Enumerable.Range(Writes - Kept + 1, Kept).Select(i => (long)i), kept.Select(m => m.Seq));
        Assert.Equal(kept.Count, kept.Select(m => m.Text).Distinct().Count());

        // A backup killed and restarted reads back only the log after its newest snapshot.
        var primary = await test.PrimaryAsync();
        var victim = test.ServersExcept(primary).First();
        victim.Process.Kill();
        Assert.True(victim.Process.WaitForExit(TimeSpan.FromSeconds(20)), "the killed backup exits");
        victim.Process.Start();
        await Poll.UntilAsync(
            () => StartingLine().Count(TestCluster.ProcessLog(victim.Process)) == 2,
            Poll.DefaultTimeout,
            "the killed backup's second start",
            () => $"expected 2 'starting:' lines in {victim.Process.Name}'s log, found {StartingLine().Count(TestCluster.ProcessLog(victim.Process))}",
            ct);
        await test.WaitForAsync(
            "the restarted backup back in the in-sync set with the primary's whole log",
            s => s.InSync.Contains(victim.Address.ToString()) && TestCluster.Member(s, victim) is { Role: "backup" } m && s.Primary is { } p && m.LogEnd == s.Members.Single(x => x.Address == p).LogEnd);

        var log = TestCluster.ProcessLog(victim.Process);
        var starts = StartingLine().Matches(log).ToList();
        Assert.True(starts.Count == 2, $"expected two starts in {victim.Process.Name}'s log, found {starts.Count}:\n{log}");
        var recovered = long.Parse(starts[1].Groups["entries"].Value, CultureInfo.InvariantCulture);
        output.WriteLine($"restart recovered {recovered} log entries after its snapshot, of {Writes + 1}");
        Assert.True(recovered <= 200, $"the restart read {recovered} log entries; with a snapshot every 100 it should read at most about 100 after the newest one");

        // The retained messages still read back in full after the restart (from the same primary).
        Assert.Equal(Writes, await client.CountAsync(ct));
        Assert.Equal(Kept, (await client.ReadAsync(Writes - Kept + 1, 10_000, ct)).Count);
    }

    [GeneratedRegex(@"starting: (?<entries>\d+) entries recovered")]
    private static partial Regex StartingLine();
}

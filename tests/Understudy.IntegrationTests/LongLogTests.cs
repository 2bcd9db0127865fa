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

    [Fact]
    public async Task A_wiped_backup_catches_up_from_a_snapshot_rejoins_the_in_sync_set_and_serves_every_retained_write_once_primary()
    {
        // Small segments, so compaction removes files and the primary's log really starts after entry 1.
        await using var test = await TestCluster.StartAsync(serverArgs: ["--snapshot-every", "100", "--log-window", "1", "--segment-bytes", "4k", "--retention-messages", Kept.ToString(CultureInfo.InvariantCulture)]);
        var client = test.NewClient(TimeSpan.FromSeconds(30));
        var ct = TestContext.Current.CancellationToken;
        for (var start = 1; start <= Writes; start += 100)
        {
            await Task.WhenAll(Enumerable.Range(start, 100).Select(i => client.AppendAsync($"w{i}", ct)));
        }

        // A backup loses its whole folder and starts again: the primary's log no longer reaches back to entry 1.
        var primary = await test.PrimaryAsync();
        var victim = test.ServersExcept(primary).First();
        victim.Process.Kill();
        Assert.True(victim.Process.WaitForExit(TimeSpan.FromSeconds(20)), "the killed backup exits");
        Directory.Delete(Path.Combine(test.Folder, $"server-{victim.Address.Port}"), recursive: true);
        victim.Process.Start();

        // Writes go on while it catches up; each is acknowledged.
        const int During = 200;
        for (var start = Writes + 1; start <= Writes + During; start += 100)
        {
            await Task.WhenAll(Enumerable.Range(start, 100).Select(i => client.AppendAsync($"w{i}", ct)));
        }

        await test.WaitForAsync(
            "the wiped backup back in the in-sync set with the primary's whole log",
            s => s.InSync.Contains(victim.Address.ToString()) && TestCluster.Member(s, victim) is { Role: "backup" } m && s.Primary is { } p && m.LogEnd == s.Members.Single(x => x.Address == p).LogEnd);
        await TestCluster.WaitForLogLineAsync(victim.Process, line => line.Contains("installed from the primary", StringComparison.Ordinal), "the wiped backup installs a snapshot");

        // Made primary, it serves every retained message the old primary acknowledged, in order.
        // A monitor that became active less than a lease ago refuses switchovers until earlier leases have surely run
        // out, and says "try again then"; on a fast machine this test gets here within that wait. Any other refusal fails.
        string? refusal = null;
        await Poll.UntilAsync(
            async token =>
            {
                var answer = await client.AdminAsync(Understudy.Protocol.AdminCommand.Switchover, victim.Address, TimeSpan.FromSeconds(30), token);
                refusal = answer.Ok ? null : answer.Message;
                Assert.True(answer.Ok || answer.Message.Contains("became active recently", StringComparison.Ordinal), $"switchover to {victim.Address}: {answer.Message}");
                return answer.Ok;
            },
            Poll.DefaultTimeout,
            $"switchover to {victim.Address}",
            _ => Task.FromResult($"expected the switchover accepted, last refusal: {refusal}"),
            ct);
        await test.WaitForAsync("the wiped server leads", s => s.Primary == victim.Address.ToString());

        const int Total = Writes + During;
        Assert.Equal(Total, await client.CountAsync(ct));
        var kept = new List<SequencedMessage>();
        while (await client.ReadAsync(Total - Kept + 1 + kept.Count, 10_000, ct) is { Count: > 0 } page)
        {
            kept.AddRange(page);
        }

        Assert.Equal(Enumerable.Range(Total - Kept + 1, Kept).Select(i => $"w{i}").ToHashSet(), kept.Select(m => m.Text).ToHashSet());
        Assert.Equal(Enumerable.Range(Total - Kept + 1, Kept).Select(i => (long)i), kept.Select(m => m.Seq));
    }

    [GeneratedRegex(@"starting: (?<entries>\d+) entries recovered")]
    private static partial Regex StartingLine();
}

using System.Net;
using Understudy.Client;
using Understudy.Coordination.Tests.Etcd;
using Understudy.Core.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;

namespace Understudy.IntegrationTests;

/// <summary>
/// Three `understudy monitor` processes agreeing through a real etcd (<c>--coordinator etcd</c>), three servers
/// heartbeating all of them, and the active monitor killed with SIGKILL under a stream of writes.
/// </summary>
public sealed class MonitorGroupEtcdTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Killing_the_active_etcd_monitor_moves_activity_without_a_failover_and_loses_no_acknowledged_write()
    {
        await using var etcd = new EtcdServer();
        await etcd.InitializeAsync();
        if (etcd.SkipReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var folder = Directory.CreateTempSubdirectory("understudy-etcd-it-");
        var options = LocalClusterOptions.OnFreePorts(3, folder.FullName, monitorHttp: true, monitors: 3) with
        {
            // The cluster name keeps this run's keys apart in etcd; timings tolerant of a loaded 2-core machine.
            MonitorArguments = ["--coordinator", "etcd", "--etcd-endpoints", etcd.ClientUrl.ToString().TrimEnd('/'), .. TestCluster.TolerantMonitorTimings],
        };
        var cluster = new LocalCluster(options);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            cluster.StartAll();
            _ = await cluster.WaitForHealthyAsync(Poll.DefaultTimeout, Cancel)
                ?? throw new TimeoutException($"start-up: expected a serving primary with every server in sync; saw {await DescribeAsync(http, cluster)}\netcd: {etcd.Output()}\n{Logs(cluster)}");

            // Which monitor is active, as that monitor's own /cluster says, with the primary and epoch it serves under.
            var (active, before) = await ActiveAsync(http, cluster, excluded: null, "the first active monitor");
            Assert.Equal("etcd", before.Monitors!.Coordinator);
            Assert.NotNull(before.Primary);

            await using var client = new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitors = cluster.MonitorAddresses,
                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(10) },
            });
            var acknowledged = new List<(long Seq, string Text)>();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
            var writer = WriteUntilStoppedAsync(client, acknowledged, stop.Token);

            await WaitForAcknowledgedAsync(acknowledged, 20, "writes before the kill", writer);
            var ackedAtKill = Count(acknowledged);
            active.Process.Kill();

            // Another monitor takes over once the dead one's etcd lease runs out: its own /cluster says it is active.
            var (next, after) = await ActiveAsync(http, cluster, excluded: active, "another monitor becoming active after the active one was killed");
            Assert.NotEqual(active.Heartbeat, next.Heartbeat);
            Assert.True(after.Monitors!.Term > before.Monitors.Term, $"the new active monitor's term {after.Monitors.Term} must be above {before.Monitors.Term}");
            Assert.True(after.Primary == before.Primary, $"no needless failover: the primary was {before.Primary}, the new active monitor names {after.Primary}");
            Assert.True(after.Epoch == before.Epoch, $"no needless failover: the epoch was {before.Epoch}, the new active monitor has {after.Epoch}");

            // Writes go on being acknowledged under the new active monitor (eventually: no claim on how fast).
            await WaitForAcknowledgedAsync(acknowledged, ackedAtKill + 20, "writes after the active monitor was killed", writer);
            await stop.CancelAsync();
            await writer;

            // A status call can miss while the admin connection moves between monitors (its answer is lost with the
            // connection): ask until one answers, then judge what it says.
            var final = await Poll.ForAsync(
                cluster.StatusAsync,
                s => s is not null,
                Poll.DefaultTimeout,
                "the final status after the writes",
                _ => $"no monitor answered a status call\n{Logs(cluster)}",
                Cancel);
            Assert.True(final?.Primary == before.Primary && final.Epoch == before.Epoch, $"after the writes: expected primary {before.Primary} in epoch {before.Epoch}; saw {final?.Primary} in epoch {final?.Epoch}");

            // No acknowledged write is lost: each is in the log at the sequence number it was acknowledged with.
            var log = await client.ReadAllAsync(Cancel);
            var bySeq = log.ToDictionary(m => m.Seq, m => m.Text);
            List<(long Seq, string Text)> acked;
            lock (acknowledged)
            {
                acked = [.. acknowledged];
            }

            var lost = acked.Where(a => !bySeq.TryGetValue(a.Seq, out var text) || text != a.Text).ToList();
            TestContext.Current.TestOutputHelper?.WriteLine($"killed {active.Process.Name} (term {before.Monitors.Term}); {next.Process.Name} active in term {after.Monitors.Term}; primary {before.Primary} epoch {before.Epoch} throughout; {acked.Count} writes acknowledged ({ackedAtKill} before the kill), log {log.Count}");
            Assert.True(lost.Count == 0, $"{lost.Count} of {acked.Count} acknowledged writes are not in the log at their sequence number (log has {log.Count}): {string.Join(", ", lost.Take(5))}");
        }
        finally
        {
            await cluster.DisposeAsync();
            folder.Delete(recursive: true);
        }
    }

    /// <summary>Appends until stopped; a write that fails or times out is ambiguous and not counted as acknowledged.</summary>
    private static async Task WriteUntilStoppedAsync(UnderstudyClient client, List<(long Seq, string Text)> acknowledged, CancellationToken cancellationToken)
    {
        for (var i = 0; !cancellationToken.IsCancellationRequested; i++)
        {
            var text = $"etcd-it-{i}";
            try
            {
                var seq = await client.AppendAsync(text, cancellationToken);
                lock (acknowledged)
                {
                    acknowledged.Add((seq, text));
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is UnderstudyException or TimeoutException or OperationCanceledException)
            {
                // Unavailable for a moment (the lease lapsed while activity moved): try the next write.
            }
        }
    }

    private static int Count(List<(long Seq, string Text)> acknowledged)
    {
        lock (acknowledged)
        {
            return acknowledged.Count;
        }
    }

    /// <summary>Waits for <paramref name="count"/> acknowledged writes; a writer that stopped early fails at once, saying why.</summary>
    private static async Task WaitForAcknowledgedAsync(List<(long Seq, string Text)> acknowledged, int count, string phase, Task writer)
    {
        string Seen() => $"expected {count} acknowledged writes, saw {Count(acknowledged)} (writer {writer.Status}{(writer.Exception is { } e ? ": " + e.GetBaseException().Message : string.Empty)})";
        await Poll.UntilAsync(() => Count(acknowledged) >= count || writer.IsCompleted, Poll.DefaultTimeout, phase, Seen, Cancel);
        Assert.True(Count(acknowledged) >= count, $"{phase}: {Seen()}");
    }

    /// <summary>Polls every running monitor's /cluster until one (not <paramref name="excluded"/>) says it is active with a primary.</summary>
    private static async Task<(LocalMonitor Monitor, ClusterStatus Status)> ActiveAsync(HttpClient http, LocalCluster cluster, LocalMonitor? excluded, string phase)
    {
        (LocalMonitor, ClusterStatus)? found = null;
        await Poll.UntilAsync(
            async ct =>
            {
                foreach (var m in cluster.Monitors.Where(m => m != excluded && m.Process.Running))
                {
                    if (await TryClusterAsync(http, m, ct) is { Monitors: { IsActive: true, HasQuorum: true }, Primary: not null } s && s.Monitors.Active == m.Heartbeat.ToString())
                    {
                        found = (m, s);
                        return true;
                    }
                }

                return false;
            },
            Poll.DefaultTimeout,
            phase,
            async ct => $"expected one running monitor{(excluded is null ? string.Empty : $" other than {excluded.Heartbeat}")} to say it is active with a primary; saw {await DescribeAsync(http, cluster)}\n{Logs(cluster)}",
            Cancel);
        return found!.Value;
    }

    private static async Task<ClusterStatus?> TryClusterAsync(HttpClient http, LocalMonitor monitor, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{monitor.HttpPort}/cluster"), cancellationToken);
            return response.StatusCode == HttpStatusCode.OK ? ClusterStatus.FromJson(await response.Content.ReadAsByteArrayAsync(cancellationToken)) : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    private static async Task<string> DescribeAsync(HttpClient http, LocalCluster cluster)
    {
        var views = new List<string>();
        foreach (var m in cluster.Monitors)
        {
            var s = m.Process.Running ? await TryClusterAsync(http, m, Cancel) : null;
            views.Add(s is null
                ? $"{m.Process.Name}: {(m.Process.Running ? "no answer" : "not running")}"
                : $"{m.Process.Name}: active={s.Monitors?.IsActive} (names {s.Monitors?.Active}, term {s.Monitors?.Term}, quorum {s.Monitors?.HasQuorum}) primary={s.Primary} epoch={s.Epoch} phase={s.Phase}");
        }

        return string.Join(" | ", views);
    }

    private static string Logs(LocalCluster cluster) =>
        string.Join("\n", cluster.Monitors.Select(m => m.Process).Concat(cluster.Servers.Select(s => s.Process))
            .Select(p => $"== {p.Name}\n{string.Join('\n', TestCluster.ProcessLog(p).Split('\n').TakeLast(8))}"));
}

using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Processes;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>
/// The operator's monitor replacement (README, operator section) with real `understudy monitor` processes: one is
/// SIGKILLed, its data folder wiped, and it is started again at the same addresses; it must rejoin, catch up with
/// the committed configuration, and vote in the next election.
/// </summary>
public sealed class MonitorReplacementProcessTests
{
    // Generous: CI runs every test project at once on 2 cores, where a process takes seconds to start.
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_monitor_process_replaced_with_an_empty_folder_catches_up_and_the_group_goes_on()
    {
        using var folder = new TempFolder();
        var ports = LocalClusterOptions.FreePorts(12);
        int Heartbeat(int i) => ports[i * 4];
        int Http(int i) => ports[(i * 4) + 3];
        string Data(int i) => Path.Combine(folder.Path, $"monitor{i + 1}");
        var peers = string.Join(',', Enumerable.Range(0, 3).Select(i => $"127.0.0.1:{Heartbeat(i)}/{ports[(i * 4) + 2]}"));
        var processes = Enumerable.Range(0, 3).Select(i => new ChildProcess(
            $"monitor{i + 1}",
            [
                "monitor", "--port", $"{Heartbeat(i)}", "--client-port", $"{ports[(i * 4) + 1]}", "--raft-port", $"{ports[(i * 4) + 2]}",
                "--http-port", $"{Http(i)}", "--data", Data(i), "--peers", peers,
            ],
            Path.Combine(folder.Path, $"monitor{i + 1}.log"))).ToList();
        ServerHost? server = null;
        using var http = new HttpClient();
        var views = new ClusterStatus?[3];

        async Task<bool> Read(IEnumerable<int> which, CancellationToken ct)
        {
            foreach (var i in which)
            {
                views[i] = await TryClusterAsync(http, Http(i), ct);
            }

            return true;
        }

        Func<CancellationToken, Task<string>> Describe(string expected) => ct => Task.FromResult(
            $"expected {expected}; views: " + string.Join(" | ", views.Select(v => v is null ? "(no answer)" : $"version {v.Version} " + JsonSerializer.Serialize(v.Monitors, ClusterStatus.Json)))
            + "\n" + string.Join("\n", processes.Select(p => $"== {p.Name} (running {p.Running})\n{string.Join('\n', TestCluster.ProcessLog(p).Split('\n').TakeLast(8))}")));

        try
        {
            foreach (var p in processes)
            {
                p.Start();
            }

            // A server gives the group something to commit: the active monitor forms the cluster (version 1 or more).
            server = await ServerHost.StartAsync(
                new ServerHostOptions
                {
                    Listen = new NodeAddress("127.0.0.1", LocalClusterOptions.FreePorts(1)[0]),
                    Monitors = [.. Enumerable.Range(0, 3).Select(i => new NodeAddress("127.0.0.1", Heartbeat(i)))],
                    DataDirectory = Path.Combine(folder.Path, "server"),
                },
                NullLoggerFactory.Instance,
                Cancel);

            await Poll.UntilAsync(
                async ct => await Read([0, 1, 2], ct) && Agree(views, [0, 1, 2]) && views[0]!.Version >= 1,
                Deadline,
                "three monitors agreeing on one active monitor and on a formed cluster",
                Describe("three answers with a quorum, one active, the same version >= 1"),
                Cancel);
            var active = Array.FindIndex(views, v => v!.Monitors!.IsActive);
            var victim = (active + 1) % 3;
            var other = (active + 2) % 3;

            // The replacement procedure: the victim is gone and the other two are level (neither lagging) first.
            processes[victim].Kill();
            await Poll.UntilAsync(
                async ct => await Read([active, other], ct) && views[active]?.Monitors is { IsActive: true } group
                    && group.Members.Single(m => m.Address == $"127.0.0.1:{Heartbeat(other)}").State == "up",
                Deadline,
                "the two remaining monitors level after the kill",
                Describe($"monitor{active + 1} still active and monitor{other + 1} up in its view"),
                Cancel);
            var version = views[active]!.Version;

            Directory.Delete(Data(victim), recursive: true);
            processes[victim].Start();
            await Poll.UntilAsync(
                async ct => await Read([0, 1, 2], ct) && Agree(views, [0, 1, 2]) && views[victim]!.Version >= version
                    && views.Single(v => v!.Monitors!.IsActive)!.Monitors!.Members.All(m => m.State == "up"),
                Deadline,
                "the replaced monitor rejoining with the committed configuration",
                Describe($"monitor{victim + 1} answering with version >= {version}, and every member up in the active monitor's view"),
                Cancel);

            // The group goes on: with the active monitor gone, the replaced one's vote is needed to elect another.
            var activeNow = Array.FindIndex(views, v => v!.Monitors!.IsActive);
            processes[activeNow].Kill();
            int[] survivors = [.. Enumerable.Range(0, 3).Where(i => i != activeNow)];
            await Poll.UntilAsync(
                async ct => await Read(survivors, ct) && Agree(views, survivors) && survivors.All(i => views[i]!.Version >= version),
                Deadline,
                "a new active monitor elected by the replaced one and the other survivor",
                Describe($"monitors {string.Join(',', survivors.Select(i => i + 1))} agreeing on one active with a quorum and version >= {version}"),
                Cancel);
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }

            foreach (var p in processes)
            {
                p.Dispose();
            }
        }
    }

    // Every one of `which` answers, reaches a quorum and names the same active monitor, which is one of them.
    private static bool Agree(ClusterStatus?[] views, int[] which) =>
        which.All(i => views[i]?.Monitors is { HasQuorum: true, Active: not null, Coordinator: "raft" } m && m.Active == views[which[0]]!.Monitors!.Active)
        && which.Count(i => views[i]!.Monitors!.IsActive) == 1
        && which.All(i => views[i]!.Version == views[which[0]]!.Version);

    private static async Task<ClusterStatus?> TryClusterAsync(HttpClient http, int port, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/cluster"), cancellationToken);
            return response.StatusCode == HttpStatusCode.OK
                ? ClusterStatus.FromJson(await response.Content.ReadAsByteArrayAsync(cancellationToken))
                : null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }
}

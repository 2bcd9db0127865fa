using System.Globalization;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;

namespace Understudy.IntegrationTests;

/// <summary>
/// One cluster runs one state machine, checked between real processes: a server started with <c>--state-machine kv</c>
/// next to a cluster running the message store hears the configuration from the monitor, connects to the members and is
/// refused in the handshake, with a line naming both state machines; the cluster keeps serving and never counts it in.
/// (Transport.Tests cover the handshake rule in-process; this is the same rule through the CLI's flags.)
/// </summary>
public class StateMachineMismatchTests
{
    [Fact]
    public async Task A_kv_server_next_to_a_message_store_cluster_is_refused_and_never_joins()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync(fsync: "never");
        var port = LocalClusterOptions.FreePorts(1)[0].ToString(CultureInfo.InvariantCulture);
        var stray = $"127.0.0.1:{port}";
        using var server = CliProcess.Start(
            "server", "--host", "127.0.0.1", "--port", port, "--monitor", test.Cluster.MonitorHeartbeats[0].ToString(),
            "--data", Path.Combine(test.Folder, "stray-kv"), "--fsync", "never", "--http-port", "0", "--state-machine", "kv");

        // Whichever side reads the other's Hello first refuses, so the stray logs either its own refusal or the member's.
        await Poll.UntilAsync(
            () => Refusal(server) is not null,
            TimeSpan.FromSeconds(60),
            "the kv server is refused by the message store's members",
            () => $"no refusal naming both state machines yet. {server.Describe()}",
            ct);
        Assert.Contains("--state-machine", Refusal(server)!, StringComparison.Ordinal);

        // The cluster goes on: a write is acknowledged, and the stray is neither a member nor in the in-sync set.
        var client = test.NewClient();
        Assert.True(await client.AppendAsync("after the refusal", ct) > 0);
        var status = await test.WaitHealthyAsync("after the refusal");
        Assert.DoesNotContain(stray, status.InSync);
        Assert.DoesNotContain(status.Members, m => m.Address == stray && m.InSync);
    }

    private static string? Refusal(CliProcess server) =>
        server.Output.Concat(server.Errors).FirstOrDefault(line => line.Contains("'kv'", StringComparison.Ordinal) && line.Contains("'messages'", StringComparison.Ordinal));
}

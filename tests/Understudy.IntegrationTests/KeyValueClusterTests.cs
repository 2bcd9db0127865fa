using Understudy.Client;
using Understudy.Client.KeyValue;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Orchestration.Polling;

namespace Understudy.IntegrationTests;

/// <summary>
/// A real three-server cluster running the key-value store: every operation through `understudy kv`, values that
/// survive a kill -9 of the primary, linearizable reads right after the failover, and backup reads with bounded
/// staleness answered by the backup asked.
/// </summary>
public class KeyValueClusterTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Kv_verbs_put_get_cas_incr_del_and_values_survive_a_kill_9_of_the_primary()
    {
        await using var test = await TestCluster.StartAsync(stateMachine: BuiltInStateMachine.Kv);
        var monitor = $"127.0.0.1:{test.Cluster.Options.ClientPort}";

        Assert.StartsWith("ok (version ", (await Kv(0, monitor, "put", "colour", "blue"))[0], StringComparison.Ordinal);
        Assert.Equal("blue", (await Kv(0, monitor, "get", "colour"))[0]);
        Assert.StartsWith("swapped", (await Kv(0, monitor, "cas", "colour", "green", "--expect", "blue"))[0], StringComparison.Ordinal);
        await Kv(4, monitor, "cas", "colour", "red", "--expect", "blue");
        Assert.StartsWith("swapped", (await Kv(0, monitor, "cas", "fresh", "x", "--expect-absent"))[0], StringComparison.Ordinal);
        Assert.Equal("5", (await Kv(0, monitor, "incr", "hits", "--by", "5"))[0]);
        Assert.Equal("6", (await Kv(0, monitor, "incr", "hits"))[0]);
        await Kv(4, monitor, "incr", "colour");
        Assert.Equal("deleted", (await Kv(0, monitor, "del", "fresh"))[0]);
        await Kv(4, monitor, "get", "fresh");
        await Kv(4, monitor, "del", "fresh");

        var primary = await test.PrimaryAsync();
        primary.Process.Kill();
        await test.WaitForAsync("promotion after kill -9 of the primary", s => s.Primary is not null && s.Primary != primary.Address.ToString());

        Assert.Equal("green", (await Kv(0, monitor, "get", "colour"))[0]);
        Assert.Equal("6", (await Kv(0, monitor, "get", "hits"))[0]);
        await Kv(4, monitor, "get", "fresh");
        Assert.Equal("7", (await Kv(0, monitor, "incr", "hits"))[0]);
    }

    [Fact]
    public async Task A_linearizable_get_right_after_a_failover_sees_every_acknowledged_write()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync(stateMachine: BuiltInStateMachine.Kv);
        var kv = new KeyValueClient(test.NewClient());
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(KeyValueStatus.Ok, (await kv.PutAsync($"k{i % 10}", $"v{i}", cancellationToken: ct)).Status);
        }

        var counter = await kv.IncrementAsync("counter", 41, ct);
        var primary = await test.PrimaryAsync();
        primary.Process.Kill();

        // Asked at once: the client retries until the new primary serves, which is only after its epoch has committed.
        for (var k = 0; k < 10; k++)
        {
            var got = await kv.GetAsync($"k{k}", ct);
            Assert.Equal($"v{40 + k}", got.ValueText);
        }

        Assert.Equal(41, counter.Number);
        Assert.Equal("41", (await kv.GetAsync("counter", ct)).ValueText);
        var status = await test.WaitForAsync("the new primary is known", s => s.Primary is not null && s.Primary != primary.Address.ToString());
        output.WriteLine($"primary after the failover: {status.Primary} (epoch {status.Epoch})");
    }

    [Fact]
    public async Task A_bounded_staleness_get_is_answered_by_the_backup_asked_and_catches_up_with_the_writes()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync(stateMachine: BuiltInStateMachine.Kv);
        var client = test.NewClient();
        var kv = new KeyValueClient(client);
        await kv.PutAsync("k", "v1", cancellationToken: ct);
        var primary = await test.PrimaryAsync();
        var backup = test.ServersExcept(primary).First();

        // A backup hears from its primary at every heartbeat, so within a few seconds' lag it answers, itself.
        var stale = ReadConsistency.BoundedStaleness(TimeSpan.FromSeconds(5), backup.Address);
        Reply reply = default;
        await Poll.UntilAsync(
            async token =>
            {
                reply = await client.QueryAsync(KeyValueCommands.Get("k"), stale, token);
                return reply.Server == backup.Address && KeyValueCommands.DecodeResult(reply.Payload.Span).ValueText == "v1";
            },
            Poll.DefaultTimeout,
            "a stale read asked of a backup",
            _ => Task.FromResult($"answered by {reply.Server} (backup {backup.Address}, primary {primary.Address}) with {(reply.Payload.IsEmpty ? "nothing" : KeyValueCommands.DecodeResult(reply.Payload.Span).ValueText)}"),
            ct);

        // And through the typed client, letting it pick a backup.
        var picked = await kv.GetAsync("k", ReadConsistency.BoundedStaleness(TimeSpan.FromSeconds(5)), ct);
        Assert.Equal("v1", picked.ValueText);

        // A backup that is killed: the read goes to the primary, linearizably.
        backup.Process.Kill();
        var after = await client.QueryAsync(KeyValueCommands.Get("k"), stale, ct);
        Assert.Equal(primary.Address, after.Server);
    }

    private static async Task<IReadOnlyList<string>> Kv(int expectedExit, string monitor, params string[] args)
    {
        using var cli = CliProcess.Start(["kv", .. args, "--monitor", monitor, "--timeout", "30"]);
        cli.Input.Close();
        var exit = await cli.WaitForExitAsync($"kv {string.Join(' ', args)}", TimeSpan.FromSeconds(60));
        Assert.True(exit == expectedExit, $"kv {string.Join(' ', args)}: expected exit {expectedExit}, got {exit}: {cli.Describe()}");
        return expectedExit == 0 ? cli.Output : cli.Errors;
    }
}

using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Server.Tests;

/// <summary>A state machine defined here, in a test project, hosted through the server library and reached through the generic client.</summary>
public sealed class UserStateMachineTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task A_user_state_machine_on_three_servers_keeps_every_acknowledged_command_across_a_primary_kill()
    {
        await using var cluster = await InProcessCluster.StartAsync(servers: 3);
        var primary = await cluster.WaitForPrimaryAsync("start-up");
        var client = cluster.NewClient();

        long expected = 0;
        for (var i = 1; i <= 20; i++)
        {
            var reply = await client.ExecuteAsync(Counter.Add(i), Token);
            expected += i;
            Assert.Equal(expected, Counter.Decode(reply.Payload));
        }

        Assert.Equal(expected, Counter.Decode((await client.QueryAsync(Counter.Total(), Token)).Payload));
        var epochBefore = InProcessCluster.ServerOf(cluster.Servers[primary]).Epoch;

        // Only an in-sync backup may take over, so the kill waits until both backups are in the set (sooner, no candidate).
        await cluster.WaitForInSyncAsync(primary, 3, "both backups in the in-sync set before the kill");

        // Writes keep going while the primary is killed: each one acknowledged must be counted exactly once.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var acknowledged = 0L;
        var writer = Task.Run(
            async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    await client.ExecuteAsync(Counter.Add(1), Token);
                    Interlocked.Increment(ref acknowledged);
                }
            },
            Token);
        await Poll.UntilAsync(() => Interlocked.Read(ref acknowledged) >= 5 || writer.IsCompleted, Poll.DefaultTimeout, "writes before the kill", () => $"expected 5 acknowledged writes, saw {Interlocked.Read(ref acknowledged)}", Token);
        await cluster.KillAsync(primary);
        var next = await cluster.WaitForPrimaryAsync("failover", primary);
        var atFailover = Interlocked.Read(ref acknowledged);
        await Poll.UntilAsync(() => Interlocked.Read(ref acknowledged) >= atFailover + 5 || writer.IsCompleted, Poll.DefaultTimeout, "writes after the failover", () => $"expected 5 more acknowledged writes after {atFailover}, saw {Interlocked.Read(ref acknowledged)}", Token);
        await stop.CancelAsync();
        await writer;

        var total = Counter.Decode((await client.QueryAsync(Counter.Total(), Token)).Payload);
        Assert.True(total == expected + Interlocked.Read(ref acknowledged), $"every acknowledged add is counted once: expected {expected} + {Interlocked.Read(ref acknowledged)}, read {total}");
        Assert.NotEqual(primary, next);
        Assert.True(InProcessCluster.ServerOf(cluster.Servers[next]).Epoch > epochBefore, "the new primary leads a newer epoch");
        Assert.Equal(cluster.ServerAddress(next), client.State.Primary);
    }

    [Fact]
    public async Task A_command_cancelled_before_it_was_sent_is_never_applied()
    {
        await using var cluster = await InProcessCluster.StartAsync(servers: 0);
        await using var client = await UnderstudyClient.ConnectAsync(new UnderstudyClientOptions { Monitor = cluster.Monitor.Options.ClientListen }, Token);

        // Already cancelled: refused at once.
        var early = await Assert.ThrowsAsync<UnderstudyCanceledException>(() => client.ExecuteAsync(Counter.Add(1000), new CancellationToken(canceled: true)));
        Assert.Equal(OutcomeKind.Failed, early.Outcome);

        // No server yet, so no primary: the call waits in the client, unsent, until it is cancelled.
        using var cancel = new CancellationTokenSource();
        var waiting = client.ExecuteAsync(Counter.Add(1000), cancel.Token);
        await Poll.UntilAsync(() => client.ConnectedMonitor == cluster.Monitor.Options.ClientListen, Poll.DefaultTimeout, "client connected", () => $"expected the monitor {cluster.Monitor.Options.ClientListen}, saw {client.ConnectedMonitor}", Token);
        await cancel.CancelAsync();
        var late = await Assert.ThrowsAsync<UnderstudyCanceledException>(() => waiting);
        Assert.Equal(OutcomeKind.Failed, late.Outcome);

        // A primary appears: had either call been kept, it would be sent now and counted.
        await cluster.StartServerAsync(0);
        await cluster.WaitForPrimaryAsync("start-up");
        Assert.Equal(1, Counter.Decode((await client.ExecuteAsync(Counter.Add(1), Token)).Payload));
        Assert.Equal(1, Counter.Decode((await client.QueryAsync(Counter.Total(), Token)).Payload));
    }

    [Fact]
    public async Task A_command_cancelled_after_it_was_sent_reports_an_unknown_outcome_and_a_slow_apply_is_counted()
    {
        // A threshold below any wait the gate can make, so the held Apply is surely over it, however quickly it is let go.
        await using var cluster = await InProcessCluster.StartAsync(servers: 1, o => o with { SlowApplyThreshold = TimeSpan.FromTicks(1) });
        await cluster.WaitForPrimaryAsync("start-up");
        var server = cluster.Servers[0];
        var gate = server.Services.GetRequiredService<ApplyGate>();
        var client = cluster.NewClient();
        Assert.Equal(5, Counter.Decode((await client.ExecuteAsync(Counter.Add(5), Token)).Payload));

        using var cancel = new CancellationTokenSource();
        var held = client.ExecuteAsync(Counter.Hold(), cancel.Token);
        await gate.Entered.WaitAsync(Poll.DefaultTimeout, Token);
        await cancel.CancelAsync();
        var e = await Assert.ThrowsAsync<UnderstudyCanceledException>(() => held);
        Assert.Equal(OutcomeKind.Unknown, e.Outcome);
        gate.Open();

        // The server held its loop in that Apply: it says so in a metric.
        var metrics = InProcessCluster.ServerOf(server).Host!.Metrics;
        await Poll.UntilAsync(() => metrics.SlowApplies.Value >= 1, Poll.DefaultTimeout, "slow apply counted", () => $"expected understudy_server_slow_applies_total >= 1, saw {metrics.SlowApplies.Value}", Token);
        await Poll.UntilAsync(() => metrics.SlowestApply.Value >= gate.Held.TotalSeconds && gate.Held > TimeSpan.Zero, Poll.DefaultTimeout, "slowest apply measured", () => $"expected understudy_server_apply_slowest_seconds >= the {gate.Held.TotalSeconds} s the gate held, saw {metrics.SlowestApply.Value}", Token);
        Assert.Equal(5, Counter.Decode((await client.QueryAsync(Counter.Total(), Token)).Payload));
    }

    [Fact]
    public async Task An_Apply_that_throws_stops_the_server_instead_of_serving_a_diverged_state()
    {
        await using var cluster = await InProcessCluster.StartAsync(servers: 1);
        await cluster.WaitForPrimaryAsync("start-up");
        var host = cluster.Servers[0];
        var server = InProcessCluster.ServerOf(host);
        var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        var client = cluster.NewClient(requestTimeout: TimeSpan.FromSeconds(2));
        Assert.Equal(7, Counter.Decode((await client.ExecuteAsync(Counter.Add(7), Token)).Payload));

        var e = await Assert.ThrowsAsync<UnderstudyException>(() => client.ExecuteAsync(Counter.Throw(), Token));
        Assert.NotEqual(OutcomeKind.Ok, e.Outcome);
        await Poll.UntilAsync(() => server.StopReason is not null && stopping.IsCancellationRequested, Poll.DefaultTimeout, "server stops after a throwing Apply", () => $"expected a stop reason and the application stopping; reason '{server.StopReason}', stopping {stopping.IsCancellationRequested}", Token);
        Assert.Contains("threw applying entry", server.StopReason, StringComparison.Ordinal);
        Assert.Contains("a bug in the user's Apply", server.StopReason, StringComparison.Ordinal);

        // Nothing more is answered from the state the throw left behind.
        if (server.Host is { } running)
        {
            var query = await running.ReadAsync(n =>
            {
                try
                {
                    n.State.Machine.Query(Counter.Total().Span);
                    return "answered";
                }
                catch (StateMachineFailedException)
                {
                    return "refused";
                }
            });
            Assert.Equal("refused", query);
        }
    }

    [Fact]
    public async Task Bad_options_fail_the_start_with_one_line()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<ApplyGate>();
        builder.Services.AddUnderstudyServer<Counter>(o => o with { Listen = new NodeAddress("127.0.0.1", 0) });
        using var host = builder.Build();
        var e = await Assert.ThrowsAsync<ArgumentException>(() => host.StartAsync(Token));
        Assert.Contains("not a TCP port", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => host.Services.GetRequiredService<UnderstudyServer>().Ready);
    }

    [Fact]
    public void Options_are_read_from_the_Understudy_Server_section()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Understudy:Server:Port"] = "8123",
            ["Understudy:Server:Monitor"] = "10.0.0.1:9000,10.0.0.2:9000",
            ["Understudy:Server:Data"] = "/var/lib/ledger",
            ["Understudy:Server:Fsync"] = "batch",
            ["Understudy:Server:MinInSync"] = "2",
        }).Build();
        var options = ServerConfiguration.Read(configuration.GetSection(UnderstudyServerServiceCollectionExtensions.ConfigurationSection), new ServerHostOptions());
        Assert.Equal(new NodeAddress("127.0.0.1", 8123), options.Listen);
        Assert.Equal([new NodeAddress("10.0.0.1", 9000), new NodeAddress("10.0.0.2", 9000)], options.Monitors);
        Assert.Equal("/var/lib/ledger", options.DataDirectory);
        Assert.Equal(Storage.FsyncPolicy.Batch, options.Fsync);
        Assert.Equal(2, options.Protocol.MinInSync);

        var bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Understudy:Server:Port"] = "eighty" }).Build();
        var e = Assert.Throws<ArgumentException>(() => ServerConfiguration.Read(bad.GetSection("Understudy:Server"), new ServerHostOptions()));
        Assert.Equal("Understudy:Server:Port is 'eighty': expected a whole number", e.Message);
    }

    [Fact]
    public async Task ConnectAsync_gives_up_when_cancelled_with_no_monitor_reachable()
    {
        var nowhere = new NodeAddress("127.0.0.1", Orchestration.Clusters.LocalClusterOptions.FreePorts(1)[0]);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Token);
        cancel.CancelAfter(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => UnderstudyClient.ConnectAsync(new UnderstudyClientOptions { Monitor = nowhere }, cancel.Token));
    }
}

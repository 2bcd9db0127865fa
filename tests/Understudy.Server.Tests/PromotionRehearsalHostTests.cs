using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;

namespace Understudy.Server.Tests;

/// <summary>
/// A server compiles a primary's code at start by rehearsing a promotion on throwaway nodes (PromotionRehearsal): a
/// backup's first promotion then does not wait for the JIT. The rehearsal must get through (a rehearsal that stops
/// short compiles only part of the path), must be skippable, and must never run a user's state machine.
/// </summary>
public sealed class PromotionRehearsalHostTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-rehearsal-");

    [Fact]
    public async Task A_starting_server_rehearses_a_promotion_through_to_committed_writes()
    {
        await using var host = await StartAsync(new ServerHostOptions { Fsync = Storage.FsyncPolicy.Never });

        var outcome = await host.Rehearsal.WaitAsync(Deadline, TestContext.Current.CancellationToken);

        Assert.True(outcome is { WritesCommitted: 8, ReadsAnswered: 2 }, $"rehearsal: expected 8 writes committed and 2 reads answered, got {outcome?.ToString() ?? "none (failed)"}");
    }

    [Fact]
    public async Task The_rehearsal_can_be_turned_off()
    {
        await using var host = await StartAsync(new ServerHostOptions { Fsync = Storage.FsyncPolicy.Never, RehearsePromotion = false });

        Assert.True(host.Rehearsal.IsCompleted, "rehearsal off: expected its outcome at once");
        Assert.Null(await host.Rehearsal);
    }

    [Fact]
    public async Task A_users_state_machine_is_never_run_by_the_rehearsal()
    {
        var made = 0;
        await using var host = await StartAsync(new ServerHostOptions
        {
            Fsync = Storage.FsyncPolicy.Never,
            StateMachine = () =>
            {
                Interlocked.Increment(ref made);
                return new Counter(new ApplyGate());
            },
        });

        var outcome = await host.Rehearsal.WaitAsync(Deadline, TestContext.Current.CancellationToken);

        Assert.True(outcome is { WritesCommitted: 8 }, $"rehearsal with a user's machine: expected it to run on the message store, got {outcome?.ToString() ?? "none (failed)"}");
        Assert.Equal(1, Volatile.Read(ref made));
    }

    [Fact]
    public void Configuration_turns_it_off_by_name_and_refuses_a_value_that_is_not_true_or_false()
    {
        static IConfiguration Section(string value) =>
            new ConfigurationBuilder().AddInMemoryCollection([new("Understudy:Server:RehearsePromotion", value)]).Build().GetSection("Understudy:Server");

        Assert.False(ServerConfiguration.Read(Section("false"), new ServerHostOptions()).RehearsePromotion);
        Assert.True(ServerConfiguration.Read(Section(""), new ServerHostOptions()).RehearsePromotion);
        var refused = Assert.Throws<ArgumentException>(() => ServerConfiguration.Read(Section("maybe"), new ServerHostOptions()));
        Assert.Equal("Understudy:Server:RehearsePromotion is 'maybe': expected true or false", refused.Message);
    }

    private async Task<ServerHost> StartAsync(ServerHostOptions options)
    {
        var ports = LocalClusterOptions.FreePorts(2);

        // No monitor listens on the second port: the server starts, keeps trying to reach it, and rehearses meanwhile.
        return await ServerHost.StartAsync(
            options with
            {
                Listen = new NodeAddress("127.0.0.1", ports[0]),
                Monitors = [new NodeAddress("127.0.0.1", ports[1])],
                DataDirectory = _folder.FullName,
            },
            NullLoggerFactory.Instance,
            TestContext.Current.CancellationToken);
    }

    public void Dispose() => _folder.Delete(recursive: true);
}

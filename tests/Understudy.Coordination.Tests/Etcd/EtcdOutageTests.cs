using Understudy.Coordination.Etcd;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Coordination.Tests.Etcd;

/// <summary>etcd itself dies: its own etcd, since the test kills it.</summary>
public sealed class EtcdOutageTests(EtcdServer etcd) : IClassFixture<EtcdServer>
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task When_etcd_dies_the_monitor_loses_its_quorum_says_why_and_stops_being_active_once_its_confirmation_ends()
    {
        if (etcd.SkipReason is { } reason)
        {
            Assert.Skip(reason);
        }

        var logger = new RecordingLogger();
        await using var coordinator = new EtcdCoordinator(new EtcdCoordinatorOptions
        {
            Endpoints = [etcd.ClientUrl],
            ClusterName = "outage",
            Self = new NodeAddress("127.0.0.1", 19100),
            Logger = logger,
        });
        await coordinator.StartAsync(Token);
        await EtcdCoordinatorTests.WaitForOneActiveAsync([coordinator], "a lone monitor becoming active");

        etcd.Kill();

        await Poll.UntilAsync(
            () => !coordinator.Leadership.HasQuorum,
            Poll.DefaultTimeout,
            "noticing that etcd is gone",
            () => $"expected HasQuorum false after etcd was killed; saw {coordinator.Leadership}",
            Token);
        Assert.Contains(logger.Lines, l => l.Contains($"etcd coordinator: cannot reach etcd at {etcd.ClientUrl.GetLeftPart(UriPartial.Authority)}", StringComparison.Ordinal));

        var confirmedUntil = coordinator.Leadership.ConfirmedUntil;
        await Poll.UntilAsync(
            () => !coordinator.Leadership.IsActive,
            Poll.DefaultTimeout,
            "stepping down without etcd",
            () => $"expected the monitor to stop being active once its confirmed leadership ran out; saw {coordinator.Leadership}",
            Token);
        Assert.True(TimeProvider.System.GetTimestamp() >= confirmedUntil, "a monitor cut off from etcd stays active only until its confirmed deadline");
        Assert.False(coordinator.Peers.Any(p => p.IsActive), "no peer is shown active when nobody is known to be");
        await Assert.ThrowsAsync<NotActiveMonitorException>(
            async () => await coordinator.CompareAndSetAsync(0, ClusterConfig.Initial with { Version = 1 }, Token));
    }
}

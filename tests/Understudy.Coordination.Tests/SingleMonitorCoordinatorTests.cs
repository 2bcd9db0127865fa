using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Coordination.Tests;

public sealed class SingleMonitorCoordinatorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("understudy-coord-").FullName;

    [Fact]
    public async Task A_group_of_one_is_always_active_and_keeps_compare_and_set()
    {
        var self = new NodeAddress("127.0.0.1", 9000);
        await using var coordinator = new SingleMonitorCoordinator(FileConfigurationStore.Open(_dir), self);
        await coordinator.StartAsync(TestContext.Current.CancellationToken);

        Assert.True(coordinator.Leadership.IsActive);
        Assert.Equal(self, coordinator.Leadership.Active);
        Assert.Equal(long.MaxValue, coordinator.Leadership.ConfirmedUntil);
        Assert.Single(coordinator.Peers);

        var initial = await coordinator.LoadAsync(TestContext.Current.CancellationToken);
        var next = initial with { Version = initial.Version + 1 };
        var written = await coordinator.CompareAndSetAsync(initial.Version, next, TestContext.Current.CancellationToken);
        Assert.True(written.Committed);
        var stale = await coordinator.CompareAndSetAsync(initial.Version, next, TestContext.Current.CancellationToken);
        Assert.False(stale.Committed);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}

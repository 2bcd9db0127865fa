using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Coordination;

/// <summary>
/// A group of one: today's single monitor. It is always active, in term 1, with leadership confirmed forever (nobody
/// else can become active), and keeps the configuration in its data folder's file.
/// </summary>
public sealed class SingleMonitorCoordinator : IMonitorCoordinator
{
    private readonly IConfigurationStore _store;
    private readonly IDisposable? _owned;
    private readonly Leadership _leadership;

    /// <summary>Wraps <paramref name="store"/>; <paramref name="self"/> is this monitor's heartbeat address.</summary>
    public SingleMonitorCoordinator(IConfigurationStore store, NodeAddress self)
    {
        _store = store;
        _owned = store as IDisposable;
        _leadership = new Leadership(1, true, self, long.MaxValue, true);
        Peers = [new MonitorPeer(self, true, MonitorPeerState.Up, true)];
    }

    public Leadership Leadership => _leadership;

    public IReadOnlyList<MonitorPeer> Peers { get; }

    // Never raised: a group of one never changes leader, and only this monitor writes the file.
#pragma warning disable CS0067
    public event Action<Leadership>? LeadershipChanged;

    public event Action<ClusterConfig>? ConfigChanged;
#pragma warning restore CS0067

    public ValueTask StartAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken) => _store.LoadAsync(cancellationToken);

    public ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken) =>
        _store.CompareAndSetAsync(expectedVersion, next, cancellationToken);

    public ValueTask DisposeAsync()
    {
        _owned?.Dispose();
        return ValueTask.CompletedTask;
    }
}

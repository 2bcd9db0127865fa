using Understudy.Coordination;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.IntegrationTests;

/// <summary>
/// A monitor group whose agreement the test decides: one committed configuration with compare-and-set, and a
/// leadership the test moves (<see cref="MakeActive"/>) or takes away from a member (<see cref="Isolate"/>). It
/// keeps the promise a real coordinator keeps: an active member's <see cref="Leadership.ConfirmedUntil"/> runs
/// <see cref="ConfirmWindow"/> ahead of now while it reaches the quorum, and stops moving the moment it does not.
/// </summary>
internal sealed class FakeMonitorGroup
{
    private readonly Lock _lock = new();
    private readonly List<FakeMonitorCoordinator> _members = [];
    private ClusterConfig _config = ClusterConfig.Initial;
    private NodeAddress _active = NodeAddress.None;
    private long _term;

    public FakeMonitorGroup(IEnumerable<NodeAddress> members, TimeSpan? confirmWindow = null)
    {
        Addresses = [.. members];
        ConfirmWindow = confirmWindow ?? TimeSpan.FromSeconds(2);
    }

    public IReadOnlyList<NodeAddress> Addresses { get; }

    public TimeSpan ConfirmWindow { get; }

    private int _refuseNext;

    /// <summary>Proposals refused because the proposer was not active (or had lost the quorum).</summary>
    public int Refusals
    {
        get
        {
            lock (_lock)
            {
                return _refusals;
            }
        }
    }

    private int _refusals;

    /// <summary>
    /// Refuses the next <paramref name="count"/> proposals as if leadership had moved between the proposer's decision
    /// and the commit (NotActiveMonitorException), even from the active member.
    /// </summary>
    public void RefuseNext(int count)
    {
        lock (_lock)
        {
            _refuseNext = count;
        }
    }

    public ClusterConfig Config
    {
        get
        {
            lock (_lock)
            {
                return _config;
            }
        }
    }

    public long Term
    {
        get
        {
            lock (_lock)
            {
                return _term;
            }
        }
    }

    public NodeAddress Active
    {
        get
        {
            lock (_lock)
            {
                return _active;
            }
        }
    }

    /// <summary>The coordinator for the member named <paramref name="self"/> (what MonitorHost's factory returns).</summary>
    public FakeMonitorCoordinator Join(NodeAddress self)
    {
        lock (_lock)
        {
            var member = new FakeMonitorCoordinator(this, self);
            _members.Add(member);
            return member;
        }
    }

    public FakeMonitorCoordinator Member(NodeAddress self)
    {
        lock (_lock)
        {
            return _members.Last(m => m.Self == self);
        }
    }

    /// <summary>A new term with <paramref name="active"/> active; every member hears of it.</summary>
    public void MakeActive(NodeAddress active)
    {
        List<FakeMonitorCoordinator> members;
        lock (_lock)
        {
            _term++;
            _active = active;
            members = [.. _members];
        }

        foreach (var m in members)
        {
            m.RaiseLeadershipChanged();
        }
    }

    /// <summary>Cuts <paramref name="member"/> off the quorum: its confirmed leadership stops where it is.</summary>
    public void Isolate(NodeAddress member) => Member(member).Isolate();

    internal Leadership LeadershipOf(FakeMonitorCoordinator member)
    {
        lock (_lock)
        {
            if (member.IsIsolated)
            {
                // It last heard the group when it was cut off: it may still believe it is active, but its
                // confirmation no longer moves, which is all that lease safety needs.
                return member.FrozenView;
            }

            var isActive = _active == member.Self;
            var confirmed = isActive ? TimeProvider.System.GetTimestamp() + (long)(ConfirmWindow.TotalSeconds * TimeProvider.System.TimestampFrequency) : 0;
            return new Leadership(_term, isActive, _active, confirmed, true);
        }
    }

    internal IReadOnlyList<MonitorPeer> PeersOf(FakeMonitorCoordinator member)
    {
        lock (_lock)
        {
            var reachable = new HashSet<NodeAddress>(_members.Where(m => !m.IsIsolated && !m.IsDisposed).Select(m => m.Self));
            return [.. Addresses.Select(a => new MonitorPeer(
                a,
                a == (member.IsIsolated ? member.FrozenView.Active : _active),
                a == member.Self || (!member.IsIsolated && reachable.Contains(a)) ? MonitorPeerState.Up : MonitorPeerState.Unreachable,
                a == member.Self))];
        }
    }

    internal ConfigWriteResult CompareAndSet(FakeMonitorCoordinator member, long expectedVersion, ClusterConfig next)
    {
        List<FakeMonitorCoordinator> members;
        ConfigWriteResult result;
        lock (_lock)
        {
            if (member.IsIsolated || _active != member.Self || _refuseNext > 0)
            {
                _refuseNext = Math.Max(0, _refuseNext - 1);
                _refusals++;
                throw new NotActiveMonitorException(member.IsIsolated ? NodeAddress.None : _active);
            }

            if (_config.Version != expectedVersion)
            {
                return new ConfigWriteResult(false, _config);
            }

            _config = next;
            result = new ConfigWriteResult(true, next);
            members = [.. _members.Where(m => m != member)];
        }

        foreach (var m in members)
        {
            m.RaiseConfigChanged(next);
        }

        return result;
    }
}

/// <summary>One member's view of a <see cref="FakeMonitorGroup"/>.</summary>
internal sealed class FakeMonitorCoordinator(FakeMonitorGroup group, NodeAddress self) : IMonitorCoordinator
{
    public NodeAddress Self { get; } = self;

    public bool IsIsolated { get; private set; }

    public bool IsDisposed { get; private set; }

    /// <summary>What it knew when it was isolated.</summary>
    public Leadership FrozenView { get; private set; }

    public Leadership Leadership => group.LeadershipOf(this);

    public IReadOnlyList<MonitorPeer> Peers => group.PeersOf(this);

    public event Action<Leadership>? LeadershipChanged;

    public event Action<ClusterConfig>? ConfigChanged;

    public void Isolate()
    {
        FrozenView = Leadership with { HasQuorum = false };
        IsIsolated = true;
        RaiseLeadershipChanged();
    }

    internal void RaiseLeadershipChanged() => LeadershipChanged?.Invoke(Leadership);

    /// <summary>Hears no committed configuration (its copy goes stale) while it still follows the leadership.</summary>
    public bool DeafToConfig { get; set; }

    internal void RaiseConfigChanged(ClusterConfig config)
    {
        if (!IsIsolated && !DeafToConfig)
        {
            ConfigChanged?.Invoke(config);
        }
    }

    public ValueTask StartAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken) => ValueTask.FromResult(group.Config);

    public ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken) =>
        ValueTask.FromResult(group.CompareAndSet(this, expectedVersion, next));

    public ValueTask DisposeAsync()
    {
        IsDisposed = true;
        return ValueTask.CompletedTask;
    }
}

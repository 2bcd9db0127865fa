using Understudy.Client;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.IntegrationTests;

/// <summary>
/// A client follows a follower's hint towards the active monitor even when the hint first leads only to monitors that
/// just failed. Fake monitors on real TCP that answer every query with one primary and, as followers, name an active
/// monitor by an address the client cannot map to its list (so the client walks the list).
/// </summary>
public sealed class ClientMonitorHintTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>
    /// The list is [first, follower, dead]: the active monitor has just died (the dead one) and the group is electing
    /// another, so the first monitor too is still a follower naming the old one. The client walks from the first to
    /// the follower, is sent on to the dead monitor, fails, goes back to the first and is sent to the follower again,
    /// whose hint now leads only to the monitor that failed within the last second. Then the first monitor is elected.
    /// The follower names the active monitor only when it changes, so a client that dropped that hint stayed at the
    /// follower for good (a CI run of `MonitorGroupRaftTests` once did). It keeps the hint and follows it once the wait
    /// is over.
    /// </summary>
    [Fact]
    public async Task A_hint_that_leads_only_to_a_monitor_that_just_failed_is_followed_once_its_wait_is_over()
    {
        var ports = LocalClusterOptions.FreePorts(4);
        var dead = new NodeAddress("127.0.0.1", ports[2]);

        // The old active monitor's heartbeat address: not in the list, nor one port below a listed address, so the
        // client cannot map it and walks the list.
        var unmappable = new NodeAddress("127.0.0.1", ports[3]);
        await using var first = await HintingMonitor.StartAsync(new NodeAddress("127.0.0.1", ports[0]), unmappable);
        await using var follower = await HintingMonitor.StartAsync(new NodeAddress("127.0.0.1", ports[1]), unmappable);
        await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [first.Address, follower.Address, dead] });

        // The second connection to the follower comes after the dead monitor failed.
        await Poll.UntilAsync(
            () => follower.Connections >= 2,
            Poll.DefaultTimeout,
            "the client coming back to the follower after the monitor it was sent to failed",
            () => $"expected 2 connections to the follower; saw {follower.Connections}",
            Token);

        first.Names = NodeAddress.None;
        await Poll.UntilAsync(
            () => client.ConnectedMonitor == first.Address,
            Poll.DefaultTimeout,
            "the client following the follower's hint on to the newly active monitor",
            () => $"expected a connection to {first.Address}; connected to {client.ConnectedMonitor} (connections: first {first.Connections}, follower {follower.Connections})",
            Token);
    }

    /// <summary>
    /// The list is [follower, active], the follower names the active monitor by its heartbeat address (one port below
    /// its client address, which the client maps), and the active monitor is down at first. The client is sent there,
    /// fails, comes back to the follower and is named the same monitor again, which failed within the last second:
    /// it keeps the hint, and follows it once that wait is over, by when the active monitor is up.
    /// </summary>
    [Fact]
    public async Task A_hint_naming_a_monitor_that_just_failed_is_kept_and_followed_when_its_wait_is_over()
    {
        var ports = LocalClusterOptions.FreePorts(2);
        var activeAddress = new NodeAddress("127.0.0.1", ports[1]);
        await using var follower = await HintingMonitor.StartAsync(new NodeAddress("127.0.0.1", ports[0]), activeAddress with { Port = activeAddress.Port - 1 });
        await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = [follower.Address, activeAddress] });
        await Poll.UntilAsync(
            () => follower.Connections >= 2,
            Poll.DefaultTimeout,
            "the client coming back to the follower after the monitor it named failed",
            () => $"expected 2 connections to the follower; saw {follower.Connections}",
            Token);

        await using var active = await HintingMonitor.StartAsync(activeAddress, NodeAddress.None);
        await Poll.UntilAsync(
            () => client.ConnectedMonitor == activeAddress,
            Poll.DefaultTimeout,
            "the client following the kept hint to the active monitor once it is up",
            () => $"expected a connection to {activeAddress}; connected to {client.ConnectedMonitor} (follower connections {follower.Connections}, active {active.Connections})",
            Token);
    }

    /// <summary>A monitor that answers every query with one primary and, when it is a follower, the active monitor it names.</summary>
    private sealed class HintingMonitor : IAsyncDisposable
    {
        private static readonly NodeAddress Primary = new("127.0.0.1", 1);
        private readonly Lock _gate = new();
        private NodeAddress _names;
        private FrameServer? _server;
        private int _connections;

        private HintingMonitor(NodeAddress address, NodeAddress names) => (Address, _names) = (address, names);

        public NodeAddress Address { get; }

        public int Connections => Volatile.Read(ref _connections);

        /// <summary>The active monitor this one names in its answers; none once it is the active one.</summary>
        public NodeAddress Names
        {
            get
            {
                lock (_gate)
                {
                    return _names;
                }
            }

            set
            {
                lock (_gate)
                {
                    _names = value;
                }
            }
        }

        public static async Task<HintingMonitor> StartAsync(NodeAddress address, NodeAddress names)
        {
            var monitor = new HintingMonitor(address, names);
            var options = new FrameConnectionOptions { Role = PeerRole.Monitor, LocalAddress = address, Incarnation = (ulong)Random.Shared.NextInt64(1, long.MaxValue) };
            monitor._server = await FrameServer.StartAsync(new TcpTransport(), address, options, monitor.HandleAsync, _ => Interlocked.Increment(ref monitor._connections), Token);
            return monitor;
        }

        private ValueTask HandleAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
        {
            if (message is PrimaryQuery)
            {
                connection.Send(new PrimaryUpdate(1, 1, Primary) { ActiveMonitor = Names });
            }

            return ValueTask.CompletedTask;
        }

        public async ValueTask DisposeAsync()
        {
            if (_server is { } server)
            {
                _server = null;
                await server.DisposeAsync();
            }
        }
    }
}

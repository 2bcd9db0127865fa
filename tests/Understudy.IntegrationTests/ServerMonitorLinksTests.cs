using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Hosting;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.IntegrationTests;

/// <summary>
/// The plumbing of a server's links to a monitor group, in process: a real <see cref="ServerHost"/> and three fake
/// monitors that answer heartbeats as the test says (these are not a monitor group: they only show where the server
/// sends what). Heartbeats go to every monitor; everything else to the one whose last ack came from the active
/// monitor; a monitor that comes (back) up is reconnected to.
/// </summary>
public sealed class ServerMonitorLinksTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public void A_server_retries_a_dead_monitor_within_a_fraction_of_an_election_timeout_however_long_it_was_down()
    {
        // A restarted monitor can win the group's next election about one upper election timeout after it starts;
        // if servers were still backing off from it (the transport's default ceiling is 5 s), it would lead without
        // heartbeats from the primary: no renewal, a write stall, and after its grace a needless failover.
        var upperElection = new Coordination.Raft.RaftCoordinatorOptions
        {
            Self = new(new NodeAddress("127.0.0.1", 1), new NodeAddress("127.0.0.1", 2), new NodeAddress("127.0.0.1", 3)),
            Peers = [],
            DataDirectory = ".",
        }.UpperElectionTimeout;
        Assert.True(MonitorLinks.MonitorMaxBackoff < upperElection, $"monitor reconnect ceiling {MonitorLinks.MonitorMaxBackoff} must be under the upper election timeout {upperElection}");
        Assert.True(MonitorLinks.MonitorMaxBackoff > TimeSpan.Zero, "a zero ceiling would spin on a dead monitor");
        var random = new Random(7);
        for (var failures = 0; failures < 64; failures++)
        {
            for (var draw = 0; draw < 100; draw++)
            {
                var wait = MonitorLinks.MonitorReconnect.Backoff(failures, random);
                Assert.True(wait <= MonitorLinks.MonitorMaxBackoff, $"after {failures} failures the wait was {wait}, expected at most {MonitorLinks.MonitorMaxBackoff}");
            }
        }
    }

    [Fact]
    public async Task Heartbeats_reach_every_monitor_and_a_monitor_that_comes_up_late_or_again_is_reconnected_to()
    {
        var folder = Directory.CreateTempSubdirectory("understudy-links-");
        var ports = Orchestration.Clusters.LocalClusterOptions.FreePorts(4);
        var monitors = new[] { new NodeAddress("127.0.0.1", ports[0]), new NodeAddress("127.0.0.1", ports[1]), new NodeAddress("127.0.0.1", ports[2]) };
        await using var first = await FakeMonitor.StartAsync(monitors[0]);
        await using var second = await FakeMonitor.StartAsync(monitors[1]);
        FakeMonitor? third = null;
        try
        {
            await using var server = await ServerHost.StartAsync(Options(folder, ports[3], monitors), NullLoggerFactory.Instance, Token);

            // Two monitors up, the third not yet listening: both hear the server, and it keeps trying the third.
            await Poll.UntilAsync(() => first.Heartbeats > 0 && second.Heartbeats > 0, Poll.DefaultTimeout, "heartbeats reach the two monitors that are up", () => $"heartbeats: {first.Heartbeats}, {second.Heartbeats}", Token);
            third = await FakeMonitor.StartAsync(monitors[2]);
            await Poll.UntilAsync(() => third.Heartbeats > 0, Poll.DefaultTimeout, "the server connects to the third monitor once it listens", () => $"third monitor heartbeats {third.Heartbeats}, connected {server.ConnectedMonitors}", Token);

            // One monitor dies: the others keep hearing the server.
            await first.DisposeAsync();
            var before = (second.Heartbeats, third.Heartbeats);
            await Poll.UntilAsync(() => second.Heartbeats > before.Item1 + 5 && third.Heartbeats > before.Item2 + 5, Poll.DefaultTimeout, "heartbeats go on to the monitors still up", () => $"before {before}, now ({second.Heartbeats}, {third.Heartbeats})", Token);

            // It comes back on the same port: reconnected with the backoff, and heartbeats reach it again.
            await using var again = await FakeMonitor.StartAsync(monitors[0]);
            await Poll.UntilAsync(() => again.Heartbeats > 0 && server.ConnectedMonitors == 3, Poll.DefaultTimeout, "the restarted monitor is reconnected to", () => $"heartbeats {again.Heartbeats}, connected {server.ConnectedMonitors} of 3", Token);
        }
        finally
        {
            if (third is not null)
            {
                await third.DisposeAsync();
            }

            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Other_monitor_bound_messages_go_to_the_monitor_that_last_acked_as_active_and_follow_it_when_it_dies()
    {
        var folder = Directory.CreateTempSubdirectory("understudy-links-");
        var ports = Orchestration.Clusters.LocalClusterOptions.FreePorts(4);
        var addresses = new[] { new NodeAddress("127.0.0.1", ports[0]), new NodeAddress("127.0.0.1", ports[1]), new NodeAddress("127.0.0.1", ports[2]) };
        var monitors = new List<FakeMonitor>();
        try
        {
            foreach (var address in addresses)
            {
                monitors.Add(await FakeMonitor.StartAsync(address));
            }

            // Only the second says it is active, in term 2; the others ack as followers.
            monitors[1].Active = true;
            await using var server = await ServerHost.StartAsync(Options(folder, ports[3], addresses), NullLoggerFactory.Instance, Token);
            await Poll.UntilAsync(() => server.ActiveMonitor == addresses[1], Poll.DefaultTimeout, "the server routes to the monitor that acks as active", () => $"routes to {server.ActiveMonitor}", Token);

            // A step-down request the server cannot honour (it leads no epoch 99) is answered with a StepDownResult,
            // a monitor-bound message other than a heartbeat: it goes to the active monitor only, whoever asked.
            monitors[0].SendToServers(new StepDown(99, NodeAddress.None));
            await Poll.UntilAsync(() => monitors[1].StepDownResults == 1, Poll.DefaultTimeout, "the step-down result reaches the active monitor", () => Describe(monitors), Token);
            Assert.Equal(0, monitors[0].StepDownResults);
            Assert.Equal(0, monitors[2].StepDownResults);

            // The active monitor dies and the third takes over in a later term: results follow it.
            monitors[2].Active = true;
            monitors[2].Term = 3;
            await monitors[1].DisposeAsync();
            await Poll.UntilAsync(() => server.ActiveMonitor == addresses[2], Poll.DefaultTimeout, "the route moves to the new active monitor", () => $"routes to {server.ActiveMonitor}", Token);
            monitors[0].SendToServers(new StepDown(99, NodeAddress.None));
            await Poll.UntilAsync(() => monitors[2].StepDownResults == 1, Poll.DefaultTimeout, "the second step-down result reaches the new active monitor", () => Describe(monitors), Token);
            Assert.Equal(0, monitors[0].StepDownResults);
        }
        finally
        {
            foreach (var m in monitors)
            {
                await m.DisposeAsync();
            }

            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_message_for_the_monitor_waits_while_no_monitor_acks_as_active_and_goes_out_when_one_does()
    {
        var folder = Directory.CreateTempSubdirectory("understudy-links-");
        var ports = Orchestration.Clusters.LocalClusterOptions.FreePorts(3);
        var addresses = new[] { new NodeAddress("127.0.0.1", ports[0]), new NodeAddress("127.0.0.1", ports[1]) };
        await using var follower = await FakeMonitor.StartAsync(addresses[0]);
        await using var other = await FakeMonitor.StartAsync(addresses[1]);
        await using var server = await ServerHost.StartAsync(Options(folder, ports[2], addresses), NullLoggerFactory.Instance, Token);
        try
        {
            await Poll.UntilAsync(() => follower.Acks > 3 && other.Acks > 3, Poll.DefaultTimeout, "both monitors ack the server's heartbeats", () => Describe([follower, other]), Token);
            follower.SendToServers(new StepDown(99, NodeAddress.None));
            await Poll.UntilAsync(() => server.HeldForMonitor == 1, Poll.DefaultTimeout, "the result is held: no monitor is active", () => $"held {server.HeldForMonitor}; {Describe([follower, other])}", Token);
            Assert.Equal(0, follower.StepDownResults + other.StepDownResults);

            other.Active = true;
            await Poll.UntilAsync(() => other.StepDownResults == 1 && server.HeldForMonitor == 0, Poll.DefaultTimeout, "the held result goes to the monitor that acks as active", () => $"held {server.HeldForMonitor}; {Describe([follower, other])}", Token);
            Assert.Equal(0, follower.StepDownResults);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    private static ServerHostOptions Options(DirectoryInfo folder, int port, IReadOnlyList<NodeAddress> monitors) => new()
    {
        Listen = new NodeAddress("127.0.0.1", port),
        Monitors = monitors,
        DataDirectory = Path.Combine(folder.FullName, "server"),
        Fsync = Storage.FsyncPolicy.Never,
    };

    private static string Describe(IEnumerable<FakeMonitor> monitors) =>
        string.Join("; ", monitors.Select(m => $"{m.Address}: {m.Heartbeats} heartbeats, {m.Acks} acks, {m.StepDownResults} step-down results"));

    /// <summary>
    /// Listens as a monitor would and answers every heartbeat with an ack saying whether it is the active one
    /// (<see cref="Active"/>, <see cref="Term"/>), counting what it receives. Not a monitor: it never promotes.
    /// </summary>
    private sealed class FakeMonitor : IAsyncDisposable
    {
        private readonly ConcurrentDictionary<long, FrameConnection> _connections = new();
        private readonly ulong _incarnation = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        private FrameServer? _server;
        private int _heartbeats;
        private int _acks;
        private int _stepDownResults;
        private volatile bool _active;
        private long _term = 2;

        private FakeMonitor(NodeAddress address) => Address = address;

        public NodeAddress Address { get; }

        public bool Active
        {
            get => _active;
            set => _active = value;
        }

        public long Term
        {
            get => Interlocked.Read(ref _term);
            set => Interlocked.Exchange(ref _term, value);
        }

        public int Heartbeats => Volatile.Read(ref _heartbeats);

        public int Acks => Volatile.Read(ref _acks);

        public int StepDownResults => Volatile.Read(ref _stepDownResults);

        public static async Task<FakeMonitor> StartAsync(NodeAddress address)
        {
            var monitor = new FakeMonitor(address);
            var options = new FrameConnectionOptions { Role = PeerRole.Monitor, LocalAddress = address, Incarnation = monitor._incarnation };
            monitor._server = await FrameServer.StartAsync(new TcpTransport(), address, options, monitor.HandleAsync, c =>
            {
                monitor._connections[c.Id] = c;
                _ = c.Closed.ContinueWith(_ => monitor._connections.TryRemove(c.Id, out FrameConnection? _), TaskScheduler.Default);
            }, TestContext.Current.CancellationToken);
            return monitor;
        }

        public void SendToServers<T>(in T message)
            where T : IMessage
        {
            foreach (var connection in _connections.Values)
            {
                connection.Send(message);
            }
        }

        private ValueTask HandleAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
        {
            switch (message)
            {
                case Heartbeat heartbeat:
                    Interlocked.Increment(ref _heartbeats);
                    if (connection.Send(Ack(heartbeat)))
                    {
                        Interlocked.Increment(ref _acks);
                    }

                    break;
                case StepDownResult:
                    Interlocked.Increment(ref _stepDownResults);
                    break;
            }

            return ValueTask.CompletedTask;
        }

        private HeartbeatAck Ack(in Heartbeat heartbeat) =>
            new(ClusterConfig.Initial, heartbeat.SentAt, 0, _incarnation, Term, Active);

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

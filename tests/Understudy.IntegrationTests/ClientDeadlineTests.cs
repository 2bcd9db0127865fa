using System.Net;
using System.Net.Sockets;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>
/// Every client and admin call, and the client's disposal, returns by its deadline whatever the monitor does: a
/// chaos run once waited for ever on a 2 s status call after the monitor died. No timing is asserted beyond
/// "returned before a generous bound": a call that hangs fails the test, a slow machine does not.
/// </summary>
public sealed class ClientDeadlineTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(1);

    /// <summary>Far past every deadline here plus any slack: reaching it means the call hung.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    public enum MonitorTrouble
    {
        /// <summary>Accepts the connection and never says a word (a monitor stuck before its handshake).</summary>
        AcceptsButNeverAnswers,

        /// <summary>Listens but never accepts: the kernel completes the connection, as for a SIGSTOPped process.</summary>
        ListensButNeverAccepts,

        /// <summary>Nothing listens: connections are refused (a dead monitor).</summary>
        NothingListens,
    }

    [Theory]
    [InlineData(MonitorTrouble.AcceptsButNeverAnswers)]
    [InlineData(MonitorTrouble.ListensButNeverAccepts)]
    [InlineData(MonitorTrouble.NothingListens)]
    public async Task Admin_append_and_dispose_return_by_their_deadline(MonitorTrouble monitor)
    {
        using var fake = new FakeMonitor(monitor);
        var client = new UnderstudyClient(new UnderstudyClientOptions
        {
            Monitor = fake.Address,
            Retry = new ClientOptions { RequestTimeout = Deadline },
            DisposeTimeout = Deadline,
        });
        try
        {
            var admin = client.AdminAsync(AdminCommand.Status, NodeAddress.None, Deadline, TestContext.Current.CancellationToken);
            await Assert.ThrowsAsync<UnderstudyException>(() => admin.WaitAsync(Bound, TestContext.Current.CancellationToken));

            var append = client.AppendAsync("never", TestContext.Current.CancellationToken);
            await Assert.ThrowsAsync<UnderstudyException>(() => append.WaitAsync(Bound, TestContext.Current.CancellationToken));

            // A call still waiting when the client goes away ends with it, and the disposal itself is bounded.
            var waiting = client.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromMinutes(10), TestContext.Current.CancellationToken);
            await client.DisposeAsync().AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken);
            await Assert.ThrowsAsync<UnderstudyException>(() => waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));
        }
        finally
        {
            await client.DisposeAsync().AsTask().WaitAsync(Bound, CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_call_whose_loop_never_ticks_still_ends_by_its_deadline_as_unknown_and_the_client_goes_on()
    {
        // A loop whose timer never fires within the test: the session cannot time the call out, so only the client's
        // backstop can end it (as when a shared loop is stuck behind other work).
        using var fake = new FakeMonitor(MonitorTrouble.NothingListens);
        await using var stuck = new ClientLoop(TimeSpan.FromHours(1));
        var client = new UnderstudyClient(new UnderstudyClientOptions
        {
            Monitor = fake.Address,
            Retry = new ClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(200) },
            DisposeTimeout = Deadline,
            Loop = stuck,
        });
        try
        {
            // No primary is ever known, so the call waits unsent; with no tick, nothing in the session ends it.
            var first = client.AppendAsync("never", TestContext.Current.CancellationToken);
            var e = await Assert.ThrowsAsync<UnderstudyException>(() => first.WaitAsync(Bound, TestContext.Current.CancellationToken));
            Assert.Equal(OutcomeKind.Unknown, e.Outcome);
            Assert.StartsWith("no answer within 1.2 s", e.Message, StringComparison.Ordinal);

            // The backstop stopped once no call waited; a later call arms it again.
            var second = client.AppendAsync("never either", TestContext.Current.CancellationToken);
            await Assert.ThrowsAsync<UnderstudyException>(() => second.WaitAsync(Bound, TestContext.Current.CancellationToken));
        }
        finally
        {
            await client.DisposeAsync().AsTask().WaitAsync(Bound, CancellationToken.None);
        }
    }

    /// <summary>A port that behaves as a monitor in trouble would; everything it opened is closed on dispose.</summary>
    private sealed class FakeMonitor : IDisposable
    {
        private readonly Socket? _listener;
        private readonly List<Socket> _accepted = [];
        private readonly CancellationTokenSource _stop = new();

        public FakeMonitor(MonitorTrouble kind)
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            Address = new NodeAddress("127.0.0.1", ((IPEndPoint)listener.LocalEndPoint!).Port);
            if (kind == MonitorTrouble.NothingListens)
            {
                // Bound but never listening: the port is ours (no one else takes it) and connecting is refused.
                _listener = listener;
                return;
            }

            listener.Listen(16);
            _listener = listener;
            if (kind == MonitorTrouble.AcceptsButNeverAnswers)
            {
                _ = AcceptForeverAsync(listener, _stop.Token);
            }
        }

        public NodeAddress Address { get; }

        public void Dispose()
        {
            _stop.Cancel();
            _listener?.Dispose();
            lock (_accepted)
            {
                foreach (var s in _accepted)
                {
                    s.Dispose();
                }
            }

            _stop.Dispose();
        }

        private async Task AcceptForeverAsync(Socket listener, CancellationToken stop)
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var socket = await listener.AcceptAsync(stop);
                    lock (_accepted)
                    {
                        _accepted.Add(socket);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                // Disposed.
            }
        }
    }
}

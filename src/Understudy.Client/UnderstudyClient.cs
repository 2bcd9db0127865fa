using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.Client;

/// <summary>
/// A client of an Understudy cluster: <see cref="ExecuteAsync"/> applies a command to the cluster's state machine and
/// <see cref="QueryAsync(ReadOnlyMemory{byte}, CancellationToken)"/> reads it, whatever state machine the cluster runs; <see cref="AppendAsync"/>,
/// <see cref="ReadAsync"/> and <see cref="CountAsync"/> speak to the default message store. A command's result comes
/// back once it is safe on every in-sync server; reads go to the primary. Make one with <see cref="ConnectAsync"/>
/// (or the constructor, which connects in the background) or <c>services.AddUnderstudyClient</c>. Survives
/// failovers without losing or duplicating a write: each call keeps its request id across retries.
/// Thread-safe; one instance per application is typical.
/// </summary>
public sealed partial class UnderstudyClient : IClientEnvironment, IAsyncDisposable
{
    private readonly UnderstudyClientOptions _options;
    private readonly ILogger _logger;
    private readonly TcpTransport _transport = new();
    private readonly FrameConnectionOptions _connectionOptions;
    private readonly ClientSession _session;
    private readonly ClientLoop _loop;

    // True when this client made its loop (and stops it on dispose); false when it shares UnderstudyClientOptions.Loop.
    private readonly bool _ownsLoop;
    private readonly MonitorRotation _monitor;
    private readonly ConcurrentDictionary<NodeAddress, ServerLink> _servers = new();
    private readonly Dictionary<long, Call> _calls = [];
    private readonly ConcurrentDictionary<long, TaskCompletionSource<AdminResponse>> _admin = new();
    private readonly TaskCompletionSource _firstPrimary = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _firstMonitor = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private UnderstudyClientState _state = UnderstudyClientState.Initial;

    // The call being submitted on the loop: a session that finishes a call inside Submit (fail-fast with no primary)
    // completes it before its sequence number is known. Touched only on the loop.
    private TaskCompletionSource<ClientResult>? _submitting;

    // The session, the calls and everything below marked "under the gate" are touched only while holding this lock:
    // a call is submitted on the caller's thread and an answer handled on the thread that read it, so a request and
    // its answer cross no thread of the client's own (one hand-off per request is left: the caller's continuation,
    // kept off the reader's thread). Timer ticks, pushes and cancellations come through the loop and take it too.
    // Nothing that blocks runs under it: sends are queued or written with one non-blocking send.
    private readonly Lock _gate = new();
    private readonly Action _tick;

    // Fails calls the session could not time out (UnderstudyClient.Calls.cs); runs only while calls wait.
    private readonly ITimer _backstop;

    // Set under the gate when the client is disposed: work still posted for it (an answer, a push, a retry) is then
    // dropped, so nothing reopens a connection.
    private bool _detached;
    private long _adminIds;
    private int _disposed;

    public UnderstudyClient(UnderstudyClientOptions options)
    {
        options.Retry.Validate();
        if (options.Monitors.Count == 0)
        {
            throw new ArgumentException("no monitor address: set UnderstudyClientOptions.Monitors", nameof(options));
        }

        _options = options;
        _logger = options.Loggers.CreateLogger("Understudy.Client");
        var clientId = options.ClientId ?? (BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) | 1);
        _connectionOptions = new FrameConnectionOptions
        {
            Role = PeerRole.Client,
            Incarnation = clientId,
            Logger = options.Loggers.CreateLogger("Understudy.Transport"),
        };
        _session = new ClientSession(clientId, options.Retry, this, TimeProvider.System, new Random(unchecked((int)clientId)));
        _ownsLoop = options.Loop is null;
        _loop = options.Loop ?? new ClientLoop(options.TickInterval, options.Loggers);
        _tick = Tick;
        _backstop = TimeProvider.System.CreateTimer(static client => ((UnderstudyClient)client!).FailOverdueCalls(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _loop.Join(_tick);
        // With others to try, a monitor that does not finish its handshake within a second is passed over (a frozen
        // process accepts connections in the kernel and never answers); alone, it is given longer.
        var connectTimeout = options.Monitors.Count > 1 ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(2);
        _monitor = new MonitorRotation(_transport, options.Monitors, _connectionOptions, HandleMonitorAsync, new ReconnectOptions { InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromSeconds(1), ConnectTimeout = connectTimeout }, _logger);

        // A new connection, to whichever monitor: query and subscribe again (every monitor of a group answers both).
        _monitor.Connected += monitor =>
        {
            Publish(s => s with { ConnectedMonitor = monitor });
            _firstMonitor.TrySetResult();
            Post(_session.Start);
        };
        _monitor.Disconnected += (monitor, closed) =>
        {
            Publish(s => s.ConnectedMonitor == monitor ? s with { ConnectedMonitor = NodeAddress.None } : s);
            ClientLog.MonitorUnreachable(_logger, monitor.ToString(), closed.ToString());
        };
        _monitor.Moved += (follower, active) =>
        {
            Publish(s => s.ConnectedMonitor == follower ? s with { ConnectedMonitor = NodeAddress.None } : s);
            ClientLog.MovedToActiveMonitor(_logger, follower.ToString(), active.ToString());
        };

        // A follower's hint led only to monitors that had just failed: ask it again who is active now.
        _monitor.AskAgain += monitor => Post(() => _monitor.Send(new PrimaryQuery(_session.ClientId, true)));
        _monitor.Start();
    }

    /// <summary>
    /// Makes a client and waits until a connection to one of <see cref="UnderstudyClientOptions.Monitors"/> is up (it
    /// keeps trying every listed monitor until then). The client then finds the primary and follows its changes on its
    /// own; <see cref="WaitForPrimaryAsync"/> waits for the first. Cancelling disposes the half-made client and throws
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public static async Task<UnderstudyClient> ConnectAsync(UnderstudyClientOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var client = new UnderstudyClient(options);
        try
        {
            await client._firstMonitor.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Swaps the published state for one derived from it (any thread; retried if another swap came first).</summary>
    private void Publish(Func<UnderstudyClientState, UnderstudyClientState> change)
    {
        while (true)
        {
            var seen = Volatile.Read(ref _state);
            if (Interlocked.CompareExchange(ref _state, change(seen), seen) == seen)
            {
                return;
            }
        }
    }

    /// <summary>
    /// How long servers may answer "unavailable" without a break before the client suspects its monitor: a monitor cut off
    /// from the rest of its group still answers, but cannot learn of a promotion the others make, so it goes on naming a
    /// primary that refuses every write for want of a lease. Two default leases: a failover the monitor does see ends
    /// well within it.
    /// </summary>
    internal static readonly TimeSpan SuspectMonitorAfter = TimeSpan.FromSeconds(1);

    // On the loop: when the current run of "unavailable" answers began (0: the last answer was something else), and when
    // the client last moved on from a monitor for that reason.
    private long _unavailableSince;
    private long _lastMonitorSuspected;

    /// <summary>
    /// On the loop, for every answer from a server: after <see cref="SuspectMonitorAfter"/> of nothing but "unavailable",
    /// and with other monitors to ask, the client leaves its monitor for the next one (at most once per that period), which
    /// tells it the primary anew. Harmless when the monitor was right: the next one names the same primary.
    /// </summary>
    private void NoteServerAnswer(ResponseStatus status)
    {
        if (status != ResponseStatus.Unavailable)
        {
            _unavailableSince = 0;
            return;
        }

        var now = TimeProvider.System.GetTimestamp();
        if (_unavailableSince == 0)
        {
            _unavailableSince = now;
            return;
        }

        if (_options.Monitors.Count < 2
            || TimeProvider.System.GetElapsedTime(_unavailableSince, now) < SuspectMonitorAfter
            || (_lastMonitorSuspected != 0 && TimeProvider.System.GetElapsedTime(_lastMonitorSuspected, now) < SuspectMonitorAfter))
        {
            return;
        }

        _lastMonitorSuspected = now;
        _unavailableSince = now;
        var monitor = _monitor.Current;
        ClientLog.MonitorSuspected(_logger, monitor.ToString(), SuspectMonitorAfter.TotalSeconds);
        _monitor.Abandon(monitor);
    }

    /// <summary>Past a call's own deadline, how long the client waits for the session to report it before giving up.</summary>
    private static readonly TimeSpan DeadlineSlack = TimeSpan.FromSeconds(1);

    public ulong ClientId => _session.ClientId;

    /// <summary>
    /// The primary, its epoch and the connected monitor as one consistent snapshot (read it once when you need two of
    /// them together: the properties below each read the snapshot of their own instant).
    /// </summary>
    public UnderstudyClientState State => Volatile.Read(ref _state);

    /// <summary>The monitor (client address) this client's configuration connection goes to now; none while it has none.</summary>
    public NodeAddress ConnectedMonitor => State.ConnectedMonitor;

    /// <summary>The primary this client sends to now (none until the monitor has answered).</summary>
    public NodeAddress Primary => State.Primary;

    /// <summary>The epoch of <see cref="Primary"/>.</summary>
    public long Epoch => State.Epoch;

    /// <summary>Raised (on a thread-pool thread) when the client switches primary.</summary>
    public event EventHandler<PrimaryChangedEventArgs>? PrimaryChanged;

    /// <summary>Waits until the monitor has named a primary.</summary>
    public Task WaitForPrimaryAsync(CancellationToken cancellationToken) => _firstPrimary.Task.WaitAsync(cancellationToken);

    /// <summary>Appends a message; returns its sequence number once every in-sync server has it.</summary>
    public async Task<long> AppendAsync(string message, CancellationToken cancellationToken = default)
    {
        var reply = await SendAsync(RequestKind.Write, MessageStoreCommands.Append(message), null, cancellationToken).ConfigureAwait(false);
        return MessageStoreCommands.DecodeSeq(reply.Payload.Span);
    }

    /// <summary>Shortest wait of <see cref="FollowAsync"/> between polls while nothing new has committed.</summary>
    public static readonly TimeSpan FollowMinDelay = TimeSpan.FromMilliseconds(10);

    /// <summary>Longest wait of <see cref="FollowAsync"/> between polls while nothing new has committed.</summary>
    public static readonly TimeSpan FollowMaxDelay = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Reads one page: at most <paramref name="limit"/> messages from sequence number <paramref name="from"/>, in order.
    /// Fewer at the end of the log, and fewer when the server caps the reply (<see cref="MessageStoreCommands.MaxReadCount"/>
    /// messages or <see cref="MessageStoreCommands.MaxReadBytes"/> of text, but always one if any is there): read on from
    /// the last sequence number + 1 until a page comes back empty.
    /// </summary>
    public async Task<IReadOnlyList<SequencedMessage>> ReadAsync(long from, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        var reply = await SendAsync(RequestKind.Read, MessageStoreCommands.Read(from, limit), null, cancellationToken).ConfigureAwait(false);
        return MessageStoreCommands.DecodeMessages(reply.Payload.Span);
    }

    /// <summary>Reads the whole log, page by page (it is all held in memory: for a long log, prefer <see cref="FollowAsync"/> or paging with <see cref="ReadAsync"/>).</summary>
    public async Task<IReadOnlyList<SequencedMessage>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<SequencedMessage>();
        while (true)
        {
            var page = await ReadAsync(all.Count + 1, MessageStoreCommands.MaxReadCount, cancellationToken).ConfigureAwait(false);
            if (page.Count == 0)
            {
                return all;
            }

            all.AddRange(page);
        }
    }

    /// <summary>
    /// Every message from sequence number <paramref name="from"/> on, in order, each once, like <c>tail -f</c>: pages
    /// through what is committed, then polls the primary for more (waiting <see cref="FollowMinDelay"/>, growing with jitter
    /// to <see cref="FollowMaxDelay"/> while nothing new arrives, and back to the shortest once something does). Reads retry
    /// across failovers like every call; one that gets no answer within the request timeout throws
    /// <see cref="UnderstudyException"/>. Cancelling <paramref name="cancellationToken"/> ends the enumeration without an exception.
    /// </summary>
    public async IAsyncEnumerable<SequencedMessage> FollowAsync(long from, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(from, 1);
        var next = from;
        var delay = FollowMinDelay;
        while (true)
        {
            IReadOnlyList<SequencedMessage> page;
            try
            {
                page = await ReadAsync(next, MessageStoreCommands.MaxReadCount, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                yield break;
            }

            foreach (var message in page)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    yield break;
                }

                yield return message;
            }

            if (page.Count > 0)
            {
                next = page[^1].Seq + 1;
                delay = FollowMinDelay;
                continue;
            }

            try
            {
                await Task.Delay(delay * (0.5 + (Random.Shared.NextDouble() / 2)), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                yield break;
            }

            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, FollowMaxDelay.Ticks));
        }
    }

    /// <summary>The number of messages (the original's messageCount).</summary>
    public async Task<long> CountAsync(CancellationToken cancellationToken = default)
    {
        var reply = await SendAsync(RequestKind.Read, MessageStoreCommands.Count(), null, cancellationToken).ConfigureAwait(false);
        return MessageStoreCommands.DecodeSeq(reply.Payload.Span);
    }

    /// <summary>
    /// Applies a command to the cluster's state machine (<see cref="IStateMachine.Apply"/> on every server) and returns its
    /// result once every in-sync server holds it. The command keeps one request id across retries and failovers, so it
    /// is applied at most once; an acknowledged one exactly once.
    /// </summary>
    /// <exception cref="UnderstudyException">Refused (<see cref="OutcomeKind.Failed"/>: not applied), or no answer within
    /// the request timeout (<see cref="OutcomeKind.Unknown"/>: it may have been applied).</exception>
    /// <exception cref="UnderstudyCanceledException"><paramref name="cancellationToken"/> was cancelled: before the command
    /// was sent it is never sent (<see cref="OutcomeKind.Failed"/>); after, its outcome is <see cref="OutcomeKind.Unknown"/>.</exception>
    public Task<Reply> ExecuteAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken = default) =>
        SendAsync(RequestKind.Write, command, null, cancellationToken);

    /// <summary>
    /// Asks the cluster's state machine a question (<see cref="IStateMachine.Query"/>), answered by the primary under its
    /// lease once its epoch has committed: a linearizable read. Never changes the state; safe to retry.
    /// </summary>
    /// <exception cref="UnderstudyException">No answer within the request timeout, or refused.</exception>
    /// <exception cref="UnderstudyCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<Reply> QueryAsync(ReadOnlyMemory<byte> query, CancellationToken cancellationToken = default) =>
        SendAsync(RequestKind.Read, query, null, cancellationToken);

    /// <summary>
    /// Sends a raw command or query; retries until answered or the deadline passes (<paramref name="timeout"/>, else the
    /// request timeout). Cancellation as for <see cref="ExecuteAsync"/>.
    /// </summary>
    public Task<Reply> SendAsync(RequestKind kind, ReadOnlyMemory<byte> payload, TimeSpan? timeout, CancellationToken cancellationToken) =>
        SendAsync(kind, payload, timeout, NodeAddress.None, cancellationToken);

    /// <summary>As <see cref="SendAsync(RequestKind, ReadOnlyMemory{byte}, TimeSpan?, CancellationToken)"/>, the first attempt to <paramref name="firstTarget"/> (none: the primary).</summary>
    private async Task<Reply> SendAsync(RequestKind kind, ReadOnlyMemory<byte> payload, TimeSpan? timeout, NodeAddress firstTarget, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (cancellationToken.IsCancellationRequested)
        {
            throw new UnderstudyCanceledException("cancelled before it was sent; never sent", OutcomeKind.Failed, cancellationToken);
        }

        var done = NewCall();

        // Submitted here, under the gate: the cancellation below runs under it too, after this, so it finds the call's number.
        long seq;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_detached, this);
            _submitting = done;
            try
            {
                seq = _session.Submit(kind, payload, timeout, firstTarget);
            }
            finally
            {
                _submitting = null;
            }

            if (!done.Task.IsCompleted)
            {
                AwaitCall(seq, done, timeout ?? _options.Retry.RequestTimeout);
            }
        }

        ClientResult result;
        var cancellation = cancellationToken.CanBeCanceled ? new CallCancellation(this, seq, done.Task) : null;
        var registration = cancellation is null ? default : CallCancellation.Register(cancellation, cancellationToken);
        await using (registration.ConfigureAwait(false))
        {
            result = await done.Task.ConfigureAwait(false);
        }

        return result.Outcome switch
        {
            OutcomeKind.Ok => new Reply(result.Payload, result.Epoch, result.Server, result.Attempts),
            _ when cancellation is { Reached: true } => throw new UnderstudyCanceledException(result.Error, result.Outcome, cancellationToken),
            _ => throw new UnderstudyException(result.Error, result.Outcome),
        };
    }

    // ------------------------------------------------------------------ network

    private ValueTask HandleMonitorAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
    {
        switch (message)
        {
            case PrimaryUpdate update:
                Post(() => _session.Handle(update));
                if (!update.ActiveMonitor.IsNone)
                {
                    // A follower answered: the active monitor tells its subscribers of a promotion at the commit, a
                    // follower only after Raft's next round, so the subscription moves there.
                    _monitor.MoveTowardsActive(ClientAddressOf(update.ActiveMonitor));
                }

                break;
            case AdminResponse response when _admin.TryGetValue(response.RequestId, out var waiter):
                waiter.TrySetResult(response);
                break;
        }

        return ValueTask.CompletedTask;
    }

    private ServerLink Link(NodeAddress server) => _servers.GetOrAdd(server, address => new ServerLink(this, address));

    // ------------------------------------------------------------------ IClientEnvironment (under the gate)

    void IClientEnvironment.SendToServer(NodeAddress server, in ClientRequest request) => Link(server).Send(request);

    void IClientEnvironment.QueryMonitor() => _monitor.Send(new PrimaryQuery(_session.ClientId, true));

    void IClientEnvironment.Complete(in ClientResult result)
    {
        if (_calls.Remove(result.Seq, out var call))
        {
            Finish(call.Done, result);
        }
        else
        {
            _submitting?.TrySetResult(result);
        }
    }

    void IClientEnvironment.Report(in ClientEvent e)
    {
        if (e.Kind != ClientEventKind.PrimaryChanged)
        {
            return;
        }

        var (primary, epoch) = (e.Primary, e.Epoch);
        Publish(s => s with { Primary = primary, Epoch = epoch });
        _firstPrimary.TrySetResult();
        ClientLog.PrimaryChanged(_logger, e.Primary.ToString(), e.Epoch, e.Detail);
        var handler = PrimaryChanged;
        if (handler is not null)
        {
            var args = new PrimaryChangedEventArgs(e.Primary, e.Epoch, e.Detail);
            ThreadPool.QueueUserWorkItem(_ => handler(this, args));
        }
    }

    /// <summary>Queues work for this client on its loop, to run under the gate; dropped once the client is disposed.</summary>
    private void Post(Action work) => _loop.Post(() =>
    {
        lock (_gate)
        {
            if (!_detached)
            {
                work();
            }
        }
    });

    private void Tick()
    {
        lock (_gate)
        {
            if (!_detached)
            {
                _session.Tick();
            }
        }
    }

    /// <summary>Under the gate: drops later work, fails every call still waiting.</summary>
    private void Detach()
    {
        _detached = true;
        foreach (var call in _calls.Values)
        {
            Fail(call.Done, new ObjectDisposedException(nameof(UnderstudyClient)));
        }

        _calls.Clear();
        _backstop.Dispose();
    }

    /// <summary>
    /// Fails every call still waiting (as unknown: it may have been applied), then closes the connections, waiting
    /// at most <see cref="UnderstudyClientOptions.DisposeTimeout"/> for them.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var waiter in _admin.Values)
        {
            waiter.TrySetException(new ObjectDisposedException(nameof(UnderstudyClient)));
        }

        var closing = CloseAsync();
        try
        {
            await closing.WaitAsync(_options.DisposeTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            ClientLog.DisposeSlow(_logger, Describe(_options.Monitors), _options.DisposeTimeout.TotalSeconds);
            _ = closing.ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task CloseAsync()
    {
        // From here no work of this client's runs (all of it checks the flag under the gate).
        lock (_gate)
        {
            Detach();
        }

        if (_ownsLoop)
        {
            await _loop.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            // A shared loop goes on for the other clients; this one's tick leaves it.
            _loop.Post(() => _loop.LeaveOnLoop(_tick));
        }

        await Task.WhenAll(_servers.Values.Select(link => link.DisposeAsync().AsTask()).Append(_monitor.DisposeAsync().AsTask())).ConfigureAwait(false);
    }
}

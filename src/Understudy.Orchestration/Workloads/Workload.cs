using Understudy.Checking.Linearizability;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Orchestration.Workloads;

/// <summary>What the workers of a <see cref="Workload"/> started by <see cref="Workload.Start"/> do.</summary>
public sealed record WorkloadOptions
{
    /// <summary>Closed-loop workers: each has one call open at a time.</summary>
    public int Workers { get; init; } = 4;

    /// <summary>How long a call may take, retries included, before its outcome is unknown (info).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Share of calls (0-100) that are counts rather than appends, to check reads against the one order too.</summary>
    public int ReadPercent { get; init; }

    /// <summary>Padding added to every appended value (0: none).</summary>
    public int PayloadBytes { get; init; }

    /// <summary>Client connections the workers share, round robin.</summary>
    public int Clients { get; init; } = 1;

    /// <summary>
    /// The cluster's state machine: with the key-value store, workers make gets, puts, deletes, compare-and-sets and
    /// increments (<see cref="KeyValueCalls"/>) recorded in <see cref="HistoryRecorder.KeyValueHistory"/>, and
    /// <see cref="ReadPercent"/> and <see cref="PayloadBytes"/> do not apply.
    /// </summary>
    public BuiltInStateMachine StateMachine { get; init; } = BuiltInStateMachine.Messages;

    /// <summary>With the key-value store: registers and as many counters the workers share (few, so calls conflict).</summary>
    public int Keys { get; init; } = 5;
}

/// <summary>
/// Client workers against a real cluster, every call recorded by one <see cref="HistoryRecorder"/>: either its own
/// workers on clients it owns (<see cref="Start"/>: the CLI's demo, chaos and failover bench), or writers and
/// readers on clients the caller owns (<see cref="StartWriter"/>, <see cref="StartReader"/>: the tests), or
/// single recorded calls through <see cref="Recorder"/>. Stopping lets every open call finish or time out, so the
/// history ends with a completion for every invoke.
/// </summary>
public sealed class Workload : IAsyncDisposable
{
    private readonly WorkloadOptions _options;
    private readonly List<UnderstudyClient> _clients = [];
    private readonly List<Task> _workers = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private int _nextProcess = 100;

    /// <summary>A workload whose calls go through clients the caller passes in.</summary>
    public Workload()
    {
        _options = new WorkloadOptions { Workers = 0, Clients = 0 };
    }

    /// <summary>A workload with its own clients of the cluster whose monitor is <paramref name="monitor"/>.</summary>
    public Workload(NodeAddress monitor, WorkloadOptions options)
        : this([monitor], options)
    {
    }

    /// <summary>A workload with its own clients of the cluster whose monitor group answers at <paramref name="monitors"/> (client addresses).</summary>
    public Workload(IReadOnlyList<NodeAddress> monitors, WorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        for (var i = 0; i < Math.Max(1, options.Clients); i++)
        {
            _clients.Add(new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitors = monitors,
                Retry = new ClientOptions { RequestTimeout = options.RequestTimeout },
            }));
        }
    }

    /// <summary>What the workers do.</summary>
    public WorkloadOptions Options => _options;

    /// <summary>Where every call is recorded: the history, acknowledgement times, counts.</summary>
    public HistoryRecorder Recorder { get; } = new();

    /// <summary>Every client this workload owns (the bench watches when each learns of a new primary).</summary>
    public IReadOnlyList<UnderstudyClient> Clients => _clients;

    /// <summary>The first client this workload owns (for watching primary changes and reading back).</summary>
    public UnderstudyClient Client => _clients.Count > 0 ? _clients[0] : throw new InvalidOperationException("this workload owns no clients");

    /// <summary>Waits until every client this workload owns knows a primary.</summary>
    public async Task WaitForPrimaryAsync(CancellationToken cancellationToken)
    {
        foreach (var c in _clients)
        {
            await c.WaitForPrimaryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Starts <see cref="WorkloadOptions.Workers"/> workers on the owned clients: worker N (process N) appends "wN-1",
    /// "wN-2"... and, for <see cref="WorkloadOptions.ReadPercent"/> of its calls, counts the log instead.
    /// </summary>
    public void Start()
    {
        for (var w = 0; w < _options.Workers; w++)
        {
            var process = w;
            var client = _clients[w % _clients.Count];
            Add(Task.Run(() => RunWorkerAsync(process, client, _stop.Token), CancellationToken.None));
        }
    }

    /// <summary>A writer appending "prefix-0", "prefix-1"... one at a time until <see cref="StopAsync"/>.</summary>
    public void StartWriter(UnderstudyClient client, string prefix)
    {
        var process = Interlocked.Increment(ref _nextProcess);
        Add(Task.Run(
            async () =>
            {
                for (var i = 0; !_stop.IsCancellationRequested; i++)
                {
                    await Recorder.AppendAsync(client, process, $"{prefix}-{i}", CancellationToken.None).ConfigureAwait(false);
                }
            },
            CancellationToken.None));
    }

    /// <summary>A reader reading the whole log now and then (reads must be prefixes of the final log and never stale).</summary>
    public void StartReader(UnderstudyClient client)
    {
        var process = Interlocked.Increment(ref _nextProcess);
        Add(Task.Run(
            async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    await Recorder.ReadAsync(client, process, 1, MessageStoreCommands.MaxReadCount, CancellationToken.None).ConfigureAwait(false);
                    try
                    {
                        // Pacing only: nothing waits for reads.
                        await Task.Delay(50, _stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            },
            CancellationToken.None));
    }

    /// <summary>Stops every worker after its current call completes (acknowledged or given up).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        Task[] workers;
        lock (_lock)
        {
            workers = [.. _workers];
        }

        await Task.WhenAll(workers).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the workers (waiting at most 30 s for their open calls) and disposes the owned clients.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Disposing after a failure (or a worker that would not finish): the caller already knows what went wrong.
        }

        foreach (var c in _clients)
        {
            await c.DisposeAsync().ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    private void Add(Task worker)
    {
        lock (_lock)
        {
            _workers.Add(worker);
        }
    }

    private async Task RunWorkerAsync(int process, UnderstudyClient client, CancellationToken stop)
    {
        if (_options.StateMachine == BuiltInStateMachine.Kv)
        {
            await RunKeyValueWorkerAsync(process, client, stop).ConfigureAwait(false);
            return;
        }

        var random = new Random(process * 7919);
        var padding = _options.PayloadBytes > 0 ? new string('x', _options.PayloadBytes) : string.Empty;
        for (var n = 1; !stop.IsCancellationRequested; n++)
        {
            // Calls are never abandoned halfway (CancellationToken.None): stopping lets each open call finish or time out.
            if (_options.ReadPercent > 0 && random.Next(100) < _options.ReadPercent)
            {
                await Recorder.CountAsync(client, process, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            var value = _options.PayloadBytes > 0 ? $"w{process}-{n}-{padding}" : $"w{process}-{n}";
            await Recorder.AppendAsync(client, process, value, CancellationToken.None).ConfigureAwait(false);
        }
    }

    private async Task RunKeyValueWorkerAsync(int process, UnderstudyClient client, CancellationToken stop)
    {
        var random = new Random(process * 7919);
        var lastSeen = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (var n = 1; !stop.IsCancellationRequested; n++)
        {
            // As for appends: a call is never abandoned halfway, stopping lets it finish or time out.
            var done = await Recorder.KeyValueAsync(client, KeyValueCalls.Next(random, process, n, _options.Keys, lastSeen), CancellationToken.None).ConfigureAwait(false);
            if (done.Outcome != KvOutcome.Ok)
            {
                continue;
            }

            switch (done.Function)
            {
                case KvFunction.Get:
                    lastSeen[done.Key] = done.Result;
                    break;
                case KvFunction.Put:
                case KvFunction.CompareAndSet when done.Swapped == true:
                    lastSeen[done.Key] = done.Value;
                    break;
                case KvFunction.Delete:
                    lastSeen[done.Key] = null;
                    break;
            }
        }
    }
}

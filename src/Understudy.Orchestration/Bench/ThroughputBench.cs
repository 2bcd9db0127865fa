using System.Diagnostics;
using System.Text.Json;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;

namespace Understudy.Orchestration.Bench;

/// <summary>What one throughput run does.</summary>
public sealed record ThroughputOptions
{
    public int Clients { get; init; } = 64;

    public double Seconds { get; init; } = 10;

    public int Payload { get; init; } = 64;

    public string Fsync { get; init; } = "always";

    /// <summary>UnderstudyClient instances (each one connection to the primary) the writers share.</summary>
    public int Connections { get; init; } = 4;

    public double WarmupSeconds { get; init; } = 2;

    /// <summary>
    /// The clients share one <see cref="ClientLoop"/> (one thread of work and one tick timer, as a process with many
    /// clients would run them); false gives each client its own, as before round 18 (for comparing the two).
    /// </summary>
    public bool SharedClientLoop { get; init; } = true;

    /// <summary>
    /// Where each worker's code runs after an answer: on the thread that read it (the default: a worker only records a
    /// latency and sends again, so no hand-off per request, as a single-threaded load generator would do) or on the
    /// thread pool, as before round 21 (for comparing the two).
    /// </summary>
    public CallResumption ResumeOn { get; init; } = CallResumption.Reader;

    /// <summary>
    /// Turn on the servers' HTTP and read their frame, acknowledgement and loop-turn counters over the window
    /// (<see cref="ThroughputResult.Counts"/>). Off by default: the figures are then those of the servers as before.
    /// </summary>
    public bool Counts { get; init; }

    public int Servers { get; init; } = 3;

    /// <summary>The state machine the cluster runs: the message store (appends) or the key-value store (puts and gets).</summary>
    public BuiltInStateMachine StateMachine { get; init; } = BuiltInStateMachine.Messages;

    /// <summary>Key-value store only: the share of operations that are (linearizable) gets, 0 to 1; the rest are puts.</summary>
    public double GetRatio { get; init; }

    /// <summary>Key-value store only: keys are drawn uniformly from this many (all written once before the run).</summary>
    public int KeySpace { get; init; } = 1000;

    /// <summary>
    /// Key-value store only: record every put (its value, when it was sent and acknowledged) and read every key back
    /// after the run to judge it (<see cref="KeyValueVerdict"/>). False records and judges nothing, so the load generator
    /// does per request only what a plain one (Redis's, say) does: for comparing speed, never for checking.
    /// </summary>
    public bool CheckValues { get; init; } = true;

    /// <summary>NAME=VALUE pairs set in the servers' environment only (through <c>env</c>), for comparing a runtime setting there.</summary>
    public IReadOnlyList<string> ServerEnvironment { get; init; } = [];

    /// <summary>Keep the servers' stores in the run folder after a run that passed (they are deleted by default; a failed run keeps them).</summary>
    public bool KeepData { get; init; }

    public required string RunFolder { get; init; }

    /// <summary>Throws with a readable message when a value is out of range.</summary>
    public void Validate()
    {
        if (GetRatio is < 0 or > 1 || double.IsNaN(GetRatio))
        {
            throw new ArgumentException($"the get ratio must be 0 to 1 (got {GetRatio})");
        }

        if (GetRatio > 0 && StateMachine != BuiltInStateMachine.Kv)
        {
            throw new ArgumentException("a get ratio needs the key-value store (--state-machine kv)");
        }

        if (ServerEnvironment.FirstOrDefault(e => e.IndexOf('=', StringComparison.Ordinal) < 1) is { } bad)
        {
            throw new ArgumentException($"a server environment setting must be NAME=VALUE (got '{bad}')");
        }

        if (KeySpace < 1)
        {
            throw new ArgumentException($"the key space must hold at least 1 key (got {KeySpace})");
        }
    }
}

/// <summary>
/// Closed-loop writers against a fresh local cluster: each writer sends one message, waits for its
/// acknowledgement (which comes only once every in-sync server holds it), and sends the next. Counts
/// acknowledgements and records every latency in the measured window, after a warm-up.
/// </summary>
public sealed class ThroughputBench
{
    private readonly ThroughputOptions _options;
    private readonly Action<string> _say;

    public ThroughputBench(ThroughputOptions options, Action<string> say)
    {
        _options = options;
        _say = say;
    }

    public async Task<ThroughputResult> RunAsync(CancellationToken cancellationToken)
    {
        var result = await MeasureAsync(cancellationToken).ConfigureAwait(false);

        // The cluster has stopped: a run that passed keeps no stores.
        ServerStores.DropAfterPassing(Path.Combine(_options.RunFolder, "data"), result.Passed, _options.KeepData);
        return result;
    }

    private async Task<ThroughputResult> MeasureAsync(CancellationToken cancellationToken)
    {
        _options.Validate();
        Directory.CreateDirectory(_options.RunFolder);
        var loadBefore = BenchJson.LoadAverage();
        // With counts, server HTTP on free ports (reserved with the others): /metrics counts frames, acks and loop turns over the window.
        var cluster = new LocalCluster(LocalClusterOptions.OnFreePorts(_options.Servers, Path.Combine(_options.RunFolder, "data"), serverHttp: _options.Counts) with
        {
            Fsync = _options.Fsync,
            StateMachine = _options.StateMachine,
            // Info for the monitor: its events (a server leaving the in-sync set, say) are rare and tell what happened.
            ServerArguments = ["--log-level", "warning"],
            Launcher = _options.ServerEnvironment.Count == 0 ? null : name => name.StartsWith("server", StringComparison.Ordinal) ? ["env", .. _options.ServerEnvironment] : [],
            MonitorArguments = ["--log-level", "info"],
        });
        await using var clusterScope = cluster.ConfigureAwait(false);
        var healthy = await cluster.StartHealthyAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        _say($"cluster up: primary {healthy.Primary}, in sync [{string.Join(", ", healthy.InSync)}], fsync {_options.Fsync}");

        // Disposed after the clients (the finally below), as a shared loop must be.
        var sharedLoop = _options.SharedClientLoop ? new ClientLoop() : null;
        var clients = new List<UnderstudyClient>();
        try
        {
            // Through ConnectAsync, as a user would: each client is connected to the monitor (bounded by the same minute
            // as the start-up) before it is given work.
            using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                connecting.CancelAfter(TimeSpan.FromSeconds(60));
                try
                {
                    for (var i = 0; i < _options.Connections; i++)
                    {
                        clients.Add(await UnderstudyClient.ConnectAsync(
                            new UnderstudyClientOptions
                            {
                                Monitor = cluster.MonitorAddress,
                                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) },
                                Loop = sharedLoop,
                                ResumeOn = _options.ResumeOn,
                            },
                            connecting.Token).ConfigureAwait(false));
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"connecting the bench's clients: {clients.Count} of {_options.Connections} reached the monitor at {cluster.MonitorAddress} within 60 s");
                }
            }

            foreach (var c in clients)
            {
                await c.WaitForPrimaryAsync(cancellationToken).ConfigureAwait(false);
            }

            var kv = _options.StateMachine == BuiltInStateMachine.Kv;
            var keys = kv ? new KeyValueLedger(_options.KeySpace) : null;
            if (keys is not null)
            {
                // Every key exists before the run, so gets read values (as Redis's load generator writes its keys first).
                await keys.FillAsync(clients[0], _options.Payload, cancellationToken).ConfigureAwait(false);
            }

            var command = MessageStoreCommands.Append(new string('x', _options.Payload));
            var workers = new Worker[_options.Clients];
            var phase = new Phase();
            var tasks = new Task[workers.Length];
            for (var w = 0; w < workers.Length; w++)
            {
                workers[w] = new Worker(clients[w % clients.Count], command, phase, (int)Math.Min(16_000_000, _options.Seconds * 60_000))
                {
                    KeyValue = keys is null ? null : new KeyValueMix(w, keys, _options.GetRatio, _options.Payload) { Record = _options.CheckValues },
                };
                tasks[w] = Task.Run(workers[w].RunAsync, CancellationToken.None);
            }

            _say(kv
                ? $"{_options.Clients} clients on {clients.Count} connection(s), key-value store, {_options.GetRatio:P0} gets over {_options.KeySpace} keys, {_options.Payload}-byte values: warming up {_options.WarmupSeconds:0.#} s"
                : $"{_options.Clients} writers on {clients.Count} connection(s), {_options.Payload}-byte messages: warming up {_options.WarmupSeconds:0.#} s");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };

            // A first scrape during the warm-up: the servers compile their HTTP path then, not in the measured window.
            await ScrapeAllAsync(http, cluster, cancellationToken).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(_options.WarmupSeconds), cancellationToken).ConfigureAwait(false);
            var countsBefore = await ScrapeAllAsync(http, cluster, cancellationToken).ConfigureAwait(false);

            var servers = cluster.Servers.Select(s => s.Process.Pid).ToArray();
            var primaryPid = cluster.Servers.First(s => s.Address.ToString() == healthy.Primary).Process.Pid;
            var cpuBefore = servers.Append(cluster.Monitor.Pid).Append(Environment.ProcessId).ToDictionary(p => p, BenchJson.CpuTime);
            var startedUtc = DateTimeOffset.UtcNow;
            var window = Stopwatch.StartNew();
            phase.Measuring = true;
            await Task.Delay(TimeSpan.FromSeconds(_options.Seconds), cancellationToken).ConfigureAwait(false);
            phase.Measuring = false;
            var elapsed = window.Elapsed.TotalSeconds;
            var cpuAfter = cpuBefore.Keys.ToDictionary(p => p, BenchJson.CpuTime);
            var countsAfter = await ScrapeAllAsync(http, cluster, cancellationToken).ConfigureAwait(false);
            phase.Stop = true;
            await Task.WhenAll(tasks).ConfigureAwait(false);

            double Share(int pid) => Math.Round((cpuAfter[pid] - cpuBefore[pid]).TotalSeconds / elapsed, 2);
            var cpu = new CpuUse(
                Share(Environment.ProcessId),
                Share(primaryPid),
                Math.Round(servers.Where(p => p != primaryPid).Sum(Share), 2),
                Share(cluster.Monitor.Pid));

            // Every acknowledgement counts as replicated to all only if no server left the in-sync set meanwhile.
            var status = await cluster.StatusAsync(cancellationToken).ConfigureAwait(false);
            var events = await cluster.EventsAsync(cancellationToken).ConfigureAwait(false);
            var shrunk = events.Any(e => e.At >= startedUtc && e.Kind is "InSyncShrunk" or "PrimaryFailed" or "Promoted");
            var inSync = !shrunk && status is not null && status.InSync.Count == _options.Servers && status.Primary == healthy.Primary;

            var samples = workers.SelectMany(w => w.Samples).ToArray();
            var readSamples = workers.SelectMany(w => w.ReadSamples).ToArray();
            var errors = workers.Sum(w => w.Errors);
            KeyValueVerdict? verdict = null;
            if (keys is not null && _options.CheckValues)
            {
                verdict = await keys.JudgeAsync(clients[0], cancellationToken).ConfigureAwait(false);
                _say($"key-value check: {verdict.KeysChecked} keys read back, {verdict.Lost} lost or overwritten by an older write, {verdict.Unknown} holding a value never written");
            }

            var result = new ThroughputResult
            {
                WritesPerSec = Math.Round(samples.Length / elapsed, 0),
                StateMachine = _options.StateMachine.FlagName(),
                ReadsPerSec = kv ? Math.Round(readSamples.Length / elapsed, 0) : null,
                ReadLatencyMs = kv && readSamples.Length > 0 ? LatencyMs.OfTicks(readSamples) : null,
                Reads = kv ? readSamples.Length : null,
                GetRatio = kv ? _options.GetRatio : null,
                KeySpace = kv ? _options.KeySpace : null,
                KeyValueCheck = verdict,
                LatencyMs = LatencyMs.OfTicks(samples),
                Clients = _options.Clients,
                Fsync = _options.Fsync,
                Payload = _options.Payload,
                Seconds = Math.Round(elapsed, 2),
                Acknowledged = samples.Length,
                Errors = errors,
                Connections = clients.Count,
                Servers = _options.Servers,
                InSyncThroughout = inSync,
                Cpu = cpu,
                Counts = !_options.Counts ? null : countsBefore.Where(b => countsAfter.ContainsKey(b.Key)).Select(b => ReplicationCounters.Between(b.Key, b.Value, countsAfter[b.Key], elapsed)).ToArray(),
                LoadBefore = loadBefore,
                LoadAfter = BenchJson.LoadAverage(),
                RunFolder = _options.RunFolder,
            };
            File.WriteAllText(Path.Combine(_options.RunFolder, "result.json"), JsonSerializer.Serialize(result, BenchJson.Options));
            BenchPlots.LatencyHistogram(samples, $"Understudy: {_options.Clients} writers, {_options.Payload} B, fsync {_options.Fsync}: {result.WritesPerSec:0} writes/s", Path.Combine(_options.RunFolder, "latency"));
            return result;
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }

            if (sharedLoop is not null)
            {
                await sharedLoop.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task<Dictionary<string, Dictionary<string, double>>> ScrapeAllAsync(HttpClient http, LocalCluster cluster, CancellationToken cancellationToken)
    {
        var all = new Dictionary<string, Dictionary<string, double>>(StringComparer.Ordinal);
        if (!_options.Counts)
        {
            return all;
        }

        foreach (var s in cluster.Servers)
        {
            if (await ReplicationCounters.ScrapeAsync(http, cluster.Options.HostOf(s.Number), cluster.Options.HttpPortOf(s.Number), cancellationToken).ConfigureAwait(false) is { } values)
            {
                all[s.Address.ToString()] = values;
            }
        }

        return all;
    }

    /// <summary>Shared switches the writers read: measuring (record samples) and stop.</summary>
    private sealed class Phase
    {
        public volatile bool Measuring;
        public volatile bool Stop;
    }

    /// <summary>
    /// One closed-loop client: one call outstanding at a time. For the message store every call is an append; for the
    /// key-value store each is a get or a put as <see cref="KeyValue"/> draws, and reads are timed apart.
    /// </summary>
    private sealed class Worker(UnderstudyClient client, byte[] command, Phase phase, int capacity)
    {
        private readonly List<long> _samples = new(Math.Min(capacity, 1 << 16));
        private readonly List<long> _readSamples = [];

        public KeyValueMix? KeyValue { get; init; }

        public long Errors { get; private set; }

        public IReadOnlyList<long> Samples => _samples;

        public IReadOnlyList<long> ReadSamples => _readSamples;

        public async Task RunAsync()
        {
            while (!phase.Stop)
            {
                var started = Stopwatch.GetTimestamp();
                var read = false;
                try
                {
                    if (KeyValue is { } mix)
                    {
                        read = await mix.NextAsync(client).ConfigureAwait(false);
                    }
                    else
                    {
                        await client.SendAsync(RequestKind.Write, command, null, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                catch (UnderstudyException)
                {
                    if (phase.Measuring)
                    {
                        Errors++;
                    }

                    continue;
                }

                if (phase.Measuring)
                {
                    (read ? _readSamples : _samples).Add(Stopwatch.GetTimestamp() - started);
                }
            }
        }
    }
}

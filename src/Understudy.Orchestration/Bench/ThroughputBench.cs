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

    public int Servers { get; init; } = 3;

    public required string RunFolder { get; init; }
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
        Directory.CreateDirectory(_options.RunFolder);
        var loadBefore = BenchJson.LoadAverage();
        var cluster = new LocalCluster(LocalClusterOptions.OnFreePorts(_options.Servers, Path.Combine(_options.RunFolder, "data")) with
        {
            Fsync = _options.Fsync,
            // Info for the monitor: its events (a server leaving the in-sync set, say) are rare and tell what happened.
            ServerArguments = ["--log-level", "warning"],
            MonitorArguments = ["--log-level", "info"],
        });
        await using var clusterScope = cluster.ConfigureAwait(false);
        var healthy = await cluster.StartHealthyAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        _say($"cluster up: primary {healthy.Primary}, in sync [{string.Join(", ", healthy.InSync)}], fsync {_options.Fsync}");

        var clients = new List<UnderstudyClient>();
        for (var i = 0; i < _options.Connections; i++)
        {
            clients.Add(new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitor = cluster.MonitorAddress,
                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) },
            }));
        }

        try
        {
            foreach (var c in clients)
            {
                await c.WaitForPrimaryAsync(cancellationToken).ConfigureAwait(false);
            }

            var command = MessageStoreCommands.Append(new string('x', _options.Payload));
            var workers = new Worker[_options.Clients];
            var phase = new Phase();
            var tasks = new Task[workers.Length];
            for (var w = 0; w < workers.Length; w++)
            {
                workers[w] = new Worker(clients[w % clients.Count], command, phase, (int)Math.Min(16_000_000, _options.Seconds * 60_000));
                tasks[w] = Task.Run(workers[w].RunAsync, CancellationToken.None);
            }

            _say($"{_options.Clients} writers on {clients.Count} connection(s), {_options.Payload}-byte messages: warming up {_options.WarmupSeconds:0.#} s");
            await Task.Delay(TimeSpan.FromSeconds(_options.WarmupSeconds), cancellationToken).ConfigureAwait(false);

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
            var errors = workers.Sum(w => w.Errors);
            var result = new ThroughputResult
            {
                WritesPerSec = Math.Round(samples.Length / elapsed, 0),
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
        }
    }

    /// <summary>Shared switches the writers read: measuring (record samples) and stop.</summary>
    private sealed class Phase
    {
        public volatile bool Measuring;
        public volatile bool Stop;
    }

    /// <summary>One closed-loop writer: one write outstanding at a time.</summary>
    private sealed class Worker(UnderstudyClient client, byte[] command, Phase phase, int capacity)
    {
        private readonly List<long> _samples = new(Math.Min(capacity, 1 << 16));

        public long Errors { get; private set; }

        public IReadOnlyList<long> Samples => _samples;

        public async Task RunAsync()
        {
            while (!phase.Stop)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await client.SendAsync(RequestKind.Write, command, null, CancellationToken.None).ConfigureAwait(false);
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
                    _samples.Add(Stopwatch.GetTimestamp() - started);
                }
            }
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Orchestration.Bench;

/// <summary>
/// Sustained closed-loop load on a fresh local three-server cluster, sampling every server's RSS and managed heap
/// each second. At 60 % of the writes a backup is killed and restarted; at 75 % another backup is killed, its folder
/// wiped, and restarted (it copies everything from the primary); after the last write every server is killed at once
/// and started again (the monitor stays up). Then the whole log is read back and judged against what the writers
/// were told, in memory bounded by two bytes per write: see <see cref="SoakLedger"/>.
/// </summary>
public sealed partial class SoakBench
{
    private const double RestartAt = 0.60;
    private const double WipeAt = 0.75;

    private readonly SoakOptions _options;
    private readonly Action<string> _say;
    private readonly Stopwatch _clock = new();
    private readonly Lock _eventsLock = new();
    private readonly List<SoakEvent> _events = [];
    private long _acknowledged;
    private long _issued;

    public SoakBench(SoakOptions options, Action<string> say)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Writes < 1 || options.Clients < 1 || options.Connections < 1 || options.Payload < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "writes, clients and connections must be at least 1 and the payload at least 0");
        }

        _options = options;
        _say = say;
    }

    public async Task<SoakResult> RunAsync(CancellationToken cancellationToken)
    {
        var result = await MeasureAsync(cancellationToken).ConfigureAwait(false);
        ServerStores.DropAfterPassing(Path.Combine(_options.RunFolder, "data"), result.Verdict == "valid", _options.KeepData);
        return result;
    }

    private async Task<SoakResult> MeasureAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_options.RunFolder);
        var loadBefore = BenchJson.LoadAverage();
        var data = Path.Combine(_options.RunFolder, "data");
        // Server HTTP on free ports (/metrics gives the managed heap), reserved with the cluster's other ports: a second
        // choice once gave server 1 the monitor's port.
        var cluster = new LocalCluster(LocalClusterOptions.OnFreePorts(3, data, serverHttp: true) with
        {
            Fsync = _options.Fsync,
            ServerArguments = ["--log-level", "warning", .. _options.ServerArguments],
            MonitorArguments = ["--log-level", "info"],
        });
        await using var clusterScope = cluster.ConfigureAwait(false);
        var healthy = await cluster.StartHealthyAsync(TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        _say($"cluster up: primary {healthy.Primary}, fsync {_options.Fsync}; {_options.Writes} writes from {_options.Clients} writers");

        var clients = new List<UnderstudyClient>();
        for (var i = 0; i < _options.Connections; i++)
        {
            clients.Add(new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitor = cluster.MonitorAddress,
                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(30) },
            }));
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var samples = new List<SoakSample>();
        Task sampling = Task.CompletedTask;
        try
        {
            foreach (var c in clients)
            {
                await c.WaitForPrimaryAsync(cancellationToken).ConfigureAwait(false);
            }

            // One ledger per writer, and one more for the probe that times the cluster restart.
            var ledgers = Enumerable.Range(0, _options.Clients + 1).Select(_ => new SoakLedger()).ToArray();
            _clock.Start();
            sampling = SampleAsync(cluster, http, samples, stopSampling.Token);
            var writers = Enumerable.Range(0, _options.Clients)
                .Select(w => Task.Run(() => WriteAsync(clients[w % clients.Count], w, ledgers[w]), CancellationToken.None))
                .ToArray();

            // Faults, while the writers write.
            var restart = await RestartBackupAsync(cluster, wipe: false, (long)(_options.Writes * RestartAt), writers, cancellationToken).ConfigureAwait(false);
            var steady = restart.AckedAtFault / Math.Max(0.001, restart.FaultAt);
            var wiped = await RestartBackupAsync(cluster, wipe: true, (long)(_options.Writes * WipeAt), writers, cancellationToken).ConfigureAwait(false);
            await Task.WhenAll(writers).ConfigureAwait(false);
            var loadSeconds = _clock.Elapsed.TotalSeconds;
            _say($"{Volatile.Read(ref _acknowledged)} of {_options.Writes} writes acknowledged in {loadSeconds:0.0} s");

            // Every server at once; the monitor stays up and must bring back a primary from the last configuration.
            Mark("cluster killed");
            foreach (var s in cluster.Servers)
            {
                s.Process.Kill();
            }

            Mark("cluster started");
            var restartClock = Stopwatch.StartNew();
            foreach (var s in cluster.Servers)
            {
                s.Process.Start();
            }

            var probe = ledgers[_options.Clients];
            var served = false;
            for (long n = 0; !served && restartClock.Elapsed < _options.PhaseTimeout; n++)
            {
                served = await WriteOnceAsync(clients[0], _options.Clients, n, probe).ConfigureAwait(false) == Outcome.Acknowledged;
            }

            var clusterRestartMs = restartClock.Elapsed.TotalMilliseconds;
            if (!served)
            {
                throw new TimeoutException($"cluster restart: no write was acknowledged within {_options.PhaseTimeout.TotalSeconds:0} s of starting every server again; logs in {Path.Combine(data, "logs")}");
            }

            Mark("cluster served");
            _say($"cluster restart: first acknowledged write {clusterRestartMs:0} ms after starting every server");
            await cluster.WaitForHealthyAsync(_options.PhaseTimeout, cancellationToken).ConfigureAwait(false);
            await stopSampling.CancelAsync().ConfigureAwait(false);
            await sampling.ConfigureAwait(false);

            var (logMessages, violations) = await JudgeAsync(clients[0], ledgers, cancellationToken).ConfigureAwait(false);
            var lost = ledgers.Sum(l => l.Lost);
            var duplicated = ledgers.Sum(l => l.Duplicated);
            var catchUpWrites = wiped.AckedAtInSync - wiped.AckedAtStart;
            var result = new SoakResult
            {
                Writes = Volatile.Read(ref _issued),
                Acknowledged = ledgers.Sum(l => l.Acknowledged),
                Failed = ledgers.Sum(l => l.Failed),
                Unknown = ledgers.Sum(l => l.Unknown),
                RssMb = Memory(samples, s => s.RssMb),
                HeapMb = Memory(samples, s => s.HeapMb),
                LastQuarterRssGrowth = SoakGrowth.Over(samples, Events(), wiped.ReachedAt, loadSeconds),
                RestartToInSyncMs = Math.Round(restart.ToInSyncMs, 1),
                WipedCatchUpMs = Math.Round(wiped.ToInSyncMs, 1),
                WipedCatchUpMb = Math.Round(wiped.PrimaryBytes / 1048576.0, 2),
                WipedCatchUpMBps = Math.Round(wiped.PrimaryBytes / 1048576.0 / Math.Max(0.001, wiped.ToInSyncMs / 1000), 2),
                SteadyWritesPerSec = Math.Round(steady, 0),
                CatchUpWritesPerSec = Math.Round(catchUpWrites / Math.Max(0.001, wiped.ToInSyncMs / 1000), 0),
                ClusterRestartMs = Math.Round(clusterRestartMs, 1),
                Lost = lost,
                Duplicated = duplicated,
                Verdict = violations.Count == 0 ? "valid" : "invalid",
                Violations = violations,
                LogMessages = logMessages,
                Seconds = Math.Round(loadSeconds, 2),
                WritesPerSec = Math.Round(Volatile.Read(ref _acknowledged) / Math.Max(0.001, loadSeconds), 0),
                Clients = _options.Clients,
                Payload = _options.Payload,
                Fsync = _options.Fsync,
                Events = Events(),
                LoadBefore = loadBefore,
                LoadAfter = BenchJson.LoadAverage(),
                RunFolder = _options.RunFolder,
            };
            File.WriteAllText(Path.Combine(_options.RunFolder, "result.json"), JsonSerializer.Serialize(result, BenchJson.Options));
            File.WriteAllText(Path.Combine(_options.RunFolder, "samples.json"), JsonSerializer.Serialize(samples, BenchJson.Options));
            PlotMemory(result, samples, Path.Combine(_options.RunFolder, "rss"));
            return result;
        }
        finally
        {
            await stopSampling.CancelAsync().ConfigureAwait(false);
            await sampling.ConfigureAwait(false);
            foreach (var c in clients)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private enum Outcome
    {
        Acknowledged,
        Failed,
        Unknown,
    }

    /// <summary>What one backup restart measured.</summary>
    private readonly record struct BackupRestart(double ReachedAt, double FaultAt, long AckedAtFault, double ToInSyncMs, long AckedAtStart, long AckedAtInSync, long PrimaryBytes);

    /// <summary>The text of writer <paramref name="writer"/>'s write <paramref name="n"/>: its tag, padded to the payload size.</summary>
    private string Text(int writer, long n)
    {
        var tag = string.Create(CultureInfo.InvariantCulture, $"s{writer}-{n}.");
        return tag.Length >= _options.Payload ? tag : tag.PadRight(_options.Payload, 'x');
    }

    private async Task WriteAsync(UnderstudyClient client, int writer, SoakLedger ledger)
    {
        for (long n = 0; Interlocked.Increment(ref _issued) <= _options.Writes; n++)
        {
            await WriteOnceAsync(client, writer, n, ledger).ConfigureAwait(false);
        }

        // The increment that found the budget spent sent nothing.
        Interlocked.Decrement(ref _issued);
    }

    private async Task<Outcome> WriteOnceAsync(UnderstudyClient client, int writer, long n, SoakLedger ledger)
    {
        try
        {
            // Never abandoned halfway (CancellationToken.None): every write ends acknowledged, failed or timed out.
            await client.SendAsync(RequestKind.Write, MessageStoreCommands.Append(Text(writer, n)), null, CancellationToken.None).ConfigureAwait(false);
            ledger.Record(n, SoakLedger.Acked);
            Interlocked.Increment(ref _acknowledged);
            return Outcome.Acknowledged;
        }
        catch (UnderstudyException e)
        {
            var failed = e.Outcome == OutcomeKind.Failed;
            ledger.Record(n, failed ? SoakLedger.FailedState : SoakLedger.UnknownState);
            return failed ? Outcome.Failed : Outcome.Unknown;
        }
    }

    /// <summary>
    /// Once <paramref name="atAcked"/> writes are acknowledged: kills a backup, waits until the monitor has taken it
    /// out of the in-sync set (so its return is a real catch-up), wipes its folder if asked, starts it and times it
    /// back into the in-sync set.
    /// </summary>
    private async Task<BackupRestart> RestartBackupAsync(LocalCluster cluster, bool wipe, long atAcked, Task[] writers, CancellationToken cancellationToken)
    {
        var what = wipe ? "wiped backup" : "restarted backup";
        var all = Task.WhenAll(writers);
        await Poll.UntilAsync(
            () => Volatile.Read(ref _acknowledged) >= atAcked || all.IsCompleted,
            _options.PhaseTimeout * 4,
            $"{what}: waiting for {atAcked} acknowledged writes",
            () => $"expected {atAcked} acknowledged writes, have {Volatile.Read(ref _acknowledged)}",
            cancellationToken).ConfigureAwait(false);
        var reachedAt = _clock.Elapsed.TotalSeconds;
        var status = await cluster.WaitForHealthyAsync(_options.PhaseTimeout, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"{what}: the cluster was not healthy (a primary, every server in sync) within {_options.PhaseTimeout.TotalSeconds:0} s");

        // The restarted backup is the first backup, the wiped one the last: two different servers.
        var backups = cluster.Servers.Where(s => s.Address.ToString() != status.Primary).ToList();
        var backup = wipe ? backups[^1] : backups[0];
        var primary = cluster.Servers.First(s => s.Address.ToString() == status.Primary);
        var faultAt = _clock.Elapsed.TotalSeconds;
        var ackedAtFault = Volatile.Read(ref _acknowledged);
        Mark($"{what}: server{backup.Number} killed");
        backup.Process.Kill();
        var name = backup.Address.ToString();
        _ = await cluster.WaitForAsync(s => !s.InSync.Contains(name), _options.PhaseTimeout, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"{what}: server{backup.Number} was still in the in-sync set {_options.PhaseTimeout.TotalSeconds:0} s after it was killed");
        var folder = ServerStores.FolderOf(cluster.Options.DataDirectory, backup.Address.Port);
        if (wipe)
        {
            Directory.Delete(folder, recursive: true);
        }

        var primaryBytes = FolderBytes(ServerStores.FolderOf(cluster.Options.DataDirectory, primary.Address.Port));
        var ackedAtStart = Volatile.Read(ref _acknowledged);
        Mark($"{what}: server{backup.Number} started");
        var clock = Stopwatch.StartNew();
        backup.Process.Start();
        _ = await cluster.WaitForAsync(s => s.InSync.Contains(name), _options.PhaseTimeout, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"{what}: server{backup.Number} was not back in the in-sync set {_options.PhaseTimeout.TotalSeconds:0} s after it started; logs in {Path.Combine(cluster.Options.DataDirectory, "logs")}");
        var toInSync = clock.Elapsed.TotalMilliseconds;
        var ackedAtInSync = Volatile.Read(ref _acknowledged);
        Mark($"{what}: server{backup.Number} in sync");
        _say($"{what}: server{backup.Number} in sync {toInSync:0} ms after its start{(wipe ? $" ({primaryBytes / 1048576.0:0.0} MiB on the primary)" : string.Empty)}");
        return new BackupRestart(reachedAt, faultAt, ackedAtFault, toInSync, ackedAtStart, ackedAtInSync, primaryBytes);
    }

    /// <summary>
    /// Reads the whole final log back in pages and checks it against the ledgers: every acknowledged write exactly
    /// once, no failed write, nothing nobody wrote, and each writer's writes in the order it sent them.
    /// </summary>
    private async Task<(long Messages, List<string> Violations)> JudgeAsync(UnderstudyClient client, SoakLedger[] ledgers, CancellationToken cancellationToken)
    {
        var violations = new List<string>();
        long from = 1;
        long messages = 0;
        var lastN = Enumerable.Repeat(-1L, ledgers.Length).ToArray();
        while (true)
        {
            IReadOnlyList<SequencedMessage>? page = null;
            for (var attempt = 0; page is null; attempt++)
            {
                try
                {
                    var reply = await client.SendAsync(RequestKind.Read, MessageStoreCommands.Read(from, MessageStoreCommands.MaxReadCount), null, cancellationToken).ConfigureAwait(false);
                    page = MessageStoreCommands.DecodeMessages(reply.Payload.Span);
                }
                catch (UnderstudyException) when (attempt < 5)
                {
                    // A failover during the read-back: the client finds the new primary; read the page again.
                }
            }

            if (page.Count == 0)
            {
                break;
            }

            foreach (var m in page)
            {
                messages++;
                if (!TryParse(m.Text, out var writer, out var n) || writer >= ledgers.Length)
                {
                    Violate(violations, $"seq {m.Seq}: '{Shorten(m.Text)}' was written by no writer");
                    continue;
                }

                var problem = ledgers[writer].Found(n);
                if (problem is not null)
                {
                    Violate(violations, $"seq {m.Seq}: writer {writer} write {n} {problem}");
                }

                if (n <= lastN[writer])
                {
                    Violate(violations, $"seq {m.Seq}: writer {writer} write {n} follows its write {lastN[writer]} in the log");
                }

                lastN[writer] = Math.Max(lastN[writer], n);
            }

            from = page[^1].Seq + 1;
        }

        for (var w = 0; w < ledgers.Length; w++)
        {
            foreach (var n in ledgers[w].Missing().Take(5))
            {
                Violate(violations, $"writer {w} write {n} was acknowledged but is not in the log");
            }
        }

        return (messages, violations);
    }

    private static void Violate(List<string> violations, string what)
    {
        // The first hundred say what went wrong; the counts say how much.
        if (violations.Count < 100)
        {
            violations.Add(what);
        }
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";

    /// <summary>Parses "sW-N." (then padding) into writer W and write N.</summary>
    internal static bool TryParse(string text, out int writer, out long n)
    {
        writer = 0;
        n = 0;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        var dot = text.IndexOf('.', StringComparison.Ordinal);
        return text.StartsWith('s') && dash > 1 && dot > dash + 1 &&
               int.TryParse(text.AsSpan(1, dash - 1), NumberStyles.None, CultureInfo.InvariantCulture, out writer) &&
               long.TryParse(text.AsSpan(dash + 1, dot - dash - 1), NumberStyles.None, CultureInfo.InvariantCulture, out n);
    }

    private void Mark(string what)
    {
        lock (_eventsLock)
        {
            _events.Add(new SoakEvent(Math.Round(_clock.Elapsed.TotalSeconds, 2), what));
        }
    }

    private List<SoakEvent> Events()
    {
        lock (_eventsLock)
        {
            return [.. _events];
        }
    }
}

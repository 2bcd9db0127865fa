using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Client;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy switchover [--to N|host:port]`: a planned handover. The monitor asks the primary to stop taking
/// writes; once the target holds the whole log the monitor promotes it and pushes the change to every client.
/// Nothing acknowledged is lost and no client call fails: callers see a short pause. The verb waits for the
/// monitor's answer (sent after the promotion) and measures that pause with a probe client's reads.
/// </summary>
internal static class SwitchoverVerb
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = false };

    public static Command Create()
    {
        var to = new Option<string?>("--to") { Description = "The backup to hand over to: a server number N as `up` numbers them (1 = first port), or host:port. Default: the best in-sync backup." };
        var monitor = MonitorOption();
        var data = UpVerb.DataOption();
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object." };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for the monitor's answer.", DefaultValueFactory = _ => 30 };
        var command = new Command("switchover", "Hand the primary role to an in-sync backup with nothing lost and no failed client write (a planned handover, e.g. before maintenance). Prints how long it took and how long clients paused.")
        {
            to, monitor, data, json, timeout,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var folder = parse.GetValue(data)!;
            var up = UpInfo.LoadIfRunning(folder);
            var address = ResolveMonitor(parse, monitor, up);
            var target = parse.GetValue(to) is { Length: > 0 } text ? UpInfo.ResolveServer(text, up, "--to", folder) : NodeAddress.None;
            var seconds = parse.GetValue(timeout);
            if (seconds <= 0)
            {
                throw new UsageException("--timeout must be a positive number of seconds");
            }

            return await RunAsync(address, target, up, parse.GetValue(json), TimeSpan.FromSeconds(seconds), cancellationToken);
        });
        return command;
    }

    /// <summary>--monitor like every verb's, but when it is not given and an `up` runs, that cluster's monitor.</summary>
    public static Option<string> MonitorOption()
    {
        var option = ClientVerb.MonitorOption();
        option.Description = "Every monitor's client API address, comma-separated. Default: the monitors of the running `up` (see --data), else 127.0.0.1:9001. Env: UNDERSTUDY_CLIENT__MONITOR.";
        return option;
    }

    public static IReadOnlyList<NodeAddress> ResolveMonitor(ParseResult parse, Option<string> monitor, UpInfo? up)
    {
        var given = parse.GetResult(monitor) is { Implicit: false } || Environment.GetEnvironmentVariable("UNDERSTUDY_CLIENT__MONITOR") is { Length: > 0 };
        return !given && up is not null ? up.MonitorsOrFirst : ClientVerb.ParseMonitor(parse, monitor);
    }

    private static async Task<int> RunAsync(IReadOnlyList<NodeAddress> monitor, NodeAddress target, UpInfo? up, bool json, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await using var client = new UnderstudyClient(new UnderstudyClientOptions { Monitors = monitor });
        var before = await StatusVerb.FetchAsync(client, monitor, cancellationToken);
        if (before is null)
        {
            return 1;
        }

        if (!target.IsNone && before.Members.FirstOrDefault(m => m.Address == target.ToString()) is null)
        {
            return CommandOutput.Fail(json, $"{target} is not a member of this cluster; members: {string.Join(", ", before.Members.Select(m => UpInfo.Describe(m.Address, up)))}");
        }

        // The probe reads the message count over and over: the gap between the last answer from the old primary
        // and the first from the new one is the pause a client sees. Reads pause exactly as long as writes do.
        await using var probe = new PauseProbe(monitor, before.Epoch);
        await probe.StartAsync(cancellationToken);

        var watch = Stopwatch.StartNew();
        AdminResponse response;
        try
        {
            response = await client.AdminAsync(AdminCommand.Switchover, target, timeout, cancellationToken);
        }
        catch (UnderstudyException e)
        {
            return CommandOutput.Fail(json, $"no answer from the monitor: {e.Message}. The switchover may still complete; check `understudy status`.");
        }

        var took = watch.Elapsed;
        if (!response.Ok)
        {
            return CommandOutput.Fail(json, $"switchover refused: {response.Message}");
        }

        var pause = await probe.StopAsync(TimeSpan.FromSeconds(3), cancellationToken);
        var after = await StatusVerb.FetchAsync(client, monitor, cancellationToken, quiet: true);
        var from = before.Primary;
        var to = after?.Primary;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(
                new
                {
                    ok = true,
                    from,
                    to,
                    epochBefore = before.Epoch,
                    epoch = after?.Epoch,
                    tookMs = Math.Round(took.TotalMilliseconds, 1),
                    clientPauseMs = pause.PauseMs is { } p ? Math.Round(p, 1) : (double?)null,
                    probeReads = pause.Reads,
                    message = response.Message,
                },
                Json));
        }
        else
        {
            Console.WriteLine($"switched over: {UpInfo.Describe(from, up)} -> {UpInfo.Describe(to, up)}, epoch {before.Epoch} -> {after?.Epoch.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}, in {took.TotalMilliseconds:0} ms");
            Console.WriteLine($"  monitor: {response.Message}");
            Console.WriteLine(pause.PauseMs is { } ms
                ? $"  clients paused {ms:0.0} ms (a probe client's reads: last answer from the old primary -> first from the new one)"
                : $"  client pause not measured ({pause.Why})");
        }

        return 0;
    }

    /// <summary>What the probe saw: the pause, or why there is none to report.</summary>
    internal readonly record struct PauseResult(double? PauseMs, int Reads, string Why);

    /// <summary>
    /// A client that reads the message count in a loop and notes when each answer arrives and from which epoch.
    /// Reads leave the log untouched, so probing costs the user nothing.
    /// </summary>
    internal sealed class PauseProbe(IReadOnlyList<NodeAddress> monitor, long startEpoch) : IAsyncDisposable
    {
        private readonly UnderstudyClient _client = new(new UnderstudyClientOptions
        {
            Monitors = monitor,
            Retry = new Core.Client.ClientOptions { RequestTimeout = TimeSpan.FromSeconds(5) },
        });

        private readonly CancellationTokenSource _stop = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly Lock _lock = new();
        private readonly TaskCompletionSource _newEpoch = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private double _lastOldAt = double.NaN;
        private double _firstNewAt = double.NaN;
        private int _reads;
        private string _error = string.Empty;
        private Task _loop = Task.CompletedTask;

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(TimeSpan.FromSeconds(3));
            try
            {
                await _client.WaitForPrimaryAsync(wait.Token);
                var first = await _client.SendAsync(RequestKind.Read, MessageStoreCommands.Count(), TimeSpan.FromSeconds(3), wait.Token);
                Record(first.Epoch);
            }
            catch (Exception e) when (e is OperationCanceledException or UnderstudyException && !cancellationToken.IsCancellationRequested)
            {
                _error = "the probe client could not read from the primary before the switchover";
                return;
            }

            _loop = Task.Run(LoopAsync, CancellationToken.None);

            // A few answers first, so the last one before the handover is recent.
            var until = _clock.Elapsed + TimeSpan.FromMilliseconds(100);
            while (_clock.Elapsed < until && Volatile.Read(ref _reads) < 5)
            {
                await Task.Delay(1, cancellationToken);
            }
        }

        private void Record(long epoch)
        {
            var at = _clock.Elapsed.TotalMilliseconds;
            lock (_lock)
            {
                _reads++;
                if (epoch <= startEpoch)
                {
                    _lastOldAt = at;
                }
                else if (double.IsNaN(_firstNewAt))
                {
                    _firstNewAt = at;
                    _newEpoch.TrySetResult();
                }
            }
        }

        private async Task LoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    var reply = await _client.SendAsync(RequestKind.Read, MessageStoreCommands.Count(), TimeSpan.FromSeconds(5), _stop.Token);
                    Record(reply.Epoch);

                    await Task.Delay(1, _stop.Token);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (UnderstudyException e)
                {
                    lock (_lock)
                    {
                        _error = $"a probe read failed: {e.Message}";
                    }
                }
            }
        }

        /// <summary>Waits (up to <paramref name="grace"/>) for the first answer from the new epoch, then stops.</summary>
        public async Task<PauseResult> StopAsync(TimeSpan grace, CancellationToken cancellationToken)
        {
            if (_error.Length > 0 && _loop.IsCompleted)
            {
                return new PauseResult(null, 0, _error);
            }

            try
            {
                await _newEpoch.Task.WaitAsync(grace, cancellationToken);
            }
            catch (TimeoutException)
            {
            }

            await _stop.CancelAsync();
            await _loop;
            lock (_lock)
            {
                if (double.IsNaN(_firstNewAt))
                {
                    return new PauseResult(null, _reads, _error.Length > 0 ? _error : "the probe got no answer from the new primary in time");
                }

                if (double.IsNaN(_lastOldAt))
                {
                    return new PauseResult(null, _reads, "the probe got no answer from the old primary before the handover");
                }

                return new PauseResult(_firstNewAt - _lastOldAt, _reads, string.Empty);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
            }

            await _client.DisposeAsync();
            _stop.Dispose();
        }
    }
}

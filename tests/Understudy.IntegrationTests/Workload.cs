using System.Diagnostics;
using Understudy.Client;
using Understudy.Checking;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>
/// Clients doing work against a real cluster, every call recorded as a Jepsen-style history (invoke, then ok,
/// fail or info, with the epoch and server of each acknowledgement), so that the same checker the simulation
/// uses can judge the final log: every acknowledged message exactly once at its sequence number, nothing
/// nobody sent, real-time order, reads that are prefixes, one acknowledging server per epoch.
/// </summary>
internal sealed class Workload : IAsyncDisposable
{
    private readonly History _history = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _writers = [];
    private readonly Lock _lock = new();
    private readonly Dictionary<int, string> _inFlight = [];
    private int _nextProcess = 100;
    private int _acked;

    /// <summary>Microseconds on the history's clock.</summary>
    public long Now => _clock.ElapsedTicks * 1_000_000 / Stopwatch.Frequency;

    /// <summary>Appends acknowledged so far, by every process.</summary>
    public int Acked => Volatile.Read(ref _acked);

    public IReadOnlyList<Operation> Operations => _history.Operations;

    /// <summary>The acknowledged appends so far: value, sequence number, epoch and server.</summary>
    public IReadOnlyList<Operation> Acknowledgements => [.. _history.Operations.Where(o => o.Type == OpType.Ok && o.Function == OpFunction.Append)];

    /// <summary>The value each writer is waiting on now (for "the call in flight when X happened").</summary>
    public IReadOnlyList<string> InFlight
    {
        get
        {
            lock (_lock)
            {
                return [.. _inFlight.Values];
            }
        }
    }

    /// <summary>One append, recorded; the sequence number, or null if it failed or timed out.</summary>
    public async Task<long?> AppendAsync(UnderstudyClient client, int process, string text)
    {
        _history.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Append, Time = Now, Value = text });
        lock (_lock)
        {
            _inFlight[process] = text;
        }

        try
        {
            var reply = await client.SendAsync(RequestKind.Write, MessageLogCommands.Append(text), null, TestContext.Current.CancellationToken);
            var seq = MessageLogCommands.DecodeSeq(reply.Payload.Span);
            _history.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Append, Time = Now, Value = text, Seq = seq, Epoch = reply.Epoch, Server = reply.Server.ToString() });
            Interlocked.Increment(ref _acked);
            return seq;
        }
        catch (UnderstudyException e)
        {
            _history.Add(new Operation { Process = process, Type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info, Function = OpFunction.Append, Time = Now, Value = text, Error = e.Message });
            return null;
        }
        finally
        {
            lock (_lock)
            {
                _inFlight.Remove(process);
            }
        }
    }

    /// <summary>One read of a range, recorded.</summary>
    public async Task<IReadOnlyList<LoggedMessage>?> ReadAsync(UnderstudyClient client, int process, long from, int count)
    {
        _history.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Read, Time = Now, ReadFrom = from, ReadLimit = count });
        try
        {
            var reply = await client.SendAsync(RequestKind.Read, MessageLogCommands.Read(from, count), null, TestContext.Current.CancellationToken);
            var page = MessageLogCommands.DecodeMessages(reply.Payload.Span);
            _history.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Read, Time = Now, ReadFrom = from, ReadValues = [.. page.Select(m => m.Text)], Epoch = reply.Epoch, Server = reply.Server.ToString() });
            return page;
        }
        catch (UnderstudyException e)
        {
            _history.Add(new Operation { Process = process, Type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info, Function = OpFunction.Read, Time = Now, Error = e.Message });
            return null;
        }
    }

    /// <summary>A writer appending "prefix-0", "prefix-1", ... one at a time until <see cref="StopAsync"/>.</summary>
    public void StartWriter(UnderstudyClient client, string prefix)
    {
        var process = Interlocked.Increment(ref _nextProcess);
        _writers.Add(Task.Run(async () =>
        {
            for (var i = 0; !_stop.IsCancellationRequested; i++)
            {
                await AppendAsync(client, process, $"{prefix}-{i}");
            }
        }));
    }

    /// <summary>A reader reading the whole log now and then (reads must be prefixes of the final log and never stale).</summary>
    public void StartReader(UnderstudyClient client)
    {
        var process = Interlocked.Increment(ref _nextProcess);
        _writers.Add(Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                await ReadAsync(client, process, 1, MessageLogCommands.MaxReadCount);
                try
                {
                    // Pacing only: reads are not what these tests wait for.
                    await Task.Delay(50, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }));
    }

    /// <summary>Waits until <paramref name="count"/> appends in all have been acknowledged.</summary>
    public Task WaitForAckedAsync(int count, string phase, TimeSpan? timeout = null) =>
        Poll.UntilAsync(() => Acked >= count, phase, () => $"expected at least {count} acknowledged appends, have {Acked}; last errors: {LastErrors()}", timeout);

    /// <summary>Stops every writer after its current call completes (acknowledged or given up).</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_writers).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
    }

    /// <summary>Errors of calls that did not succeed, newest last.</summary>
    public string LastErrors(int count = 5)
    {
        var errors = _history.Operations.Where(o => o.Type is OpType.Fail or OpType.Info).TakeLast(count).Select(o => $"{o.Value}: {o.Error}").ToList();
        return errors.Count == 0 ? "none" : string.Join("; ", errors);
    }

    /// <summary>
    /// Judges the history against the final log read from the primary: no rule of the checker may break, and the
    /// log's own sequence numbers run 1..n.
    /// </summary>
    public CheckResult AssertValid(IReadOnlyList<LoggedMessage> finalLog, ITestOutputHelper output)
    {
        for (var i = 0; i < finalLog.Count; i++)
        {
            Assert.True(finalLog[i].Seq == i + 1, $"the final log's message {i + 1} has sequence number {finalLog[i].Seq}");
        }

        var result = HistoryChecker.Check(_history, [.. finalLog.Select(m => m.Text)]);
        output.WriteLine($"history: {result.Stats}");
        Assert.True(result.Valid, $"the history breaks the rules: {string.Join("\n", result.Violations)}\nstats: {result.Stats}");
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await Task.WhenAll(_writers).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception)
        {
            // Disposing after a failure: the test has already said what went wrong.
        }

        _stop.Dispose();
    }
}

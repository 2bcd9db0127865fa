using System.Diagnostics;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Orchestration.Workloads;

/// <summary>
/// Makes client calls against a real cluster and records each one as a Jepsen-style history (invoke, then ok,
/// fail or info, with the epoch and server of every acknowledgement) on one microsecond clock, so that the
/// checker the simulation uses can judge the final log, and gaps in service can be measured around faults.
/// Thread-safe: any number of workers record through one recorder.
/// </summary>
public sealed class HistoryRecorder
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private readonly List<long> _ackTimes = [];
    private readonly List<(long Time, long Epoch)> _ackEpochs = [];
    private readonly Dictionary<int, string> _inFlight = [];
    private long _failed;
    private long _unknown;
    private long _leaseRefused;

    /// <summary>
    /// Appends that ended failed or unknown with the primary's "no lease" refusal as their last error: writes the
    /// cluster turned away for want of a lease (a monitor group that took too long to confirm a new active monitor).
    /// The client retries such a refusal within its request timeout, so only the ones it gave up on are counted.
    /// </summary>
    public long LeaseRefused => Interlocked.Read(ref _leaseRefused);

    /// <summary>Every call so far, in the order recorded.</summary>
    public History History { get; } = new();

    /// <summary>With the key-value store: every call so far, one record each, for the linearizability checker.</summary>
    public KvHistory KeyValueHistory { get; } = new();

    /// <summary>Microseconds since the recorder was created (the history's clock).</summary>
    public long Now => _clock.Elapsed.Ticks / 10;

    /// <summary>Appends (with the key-value store: calls) acknowledged so far.</summary>
    public int Acknowledged
    {
        get
        {
            lock (_lock)
            {
                return _ackTimes.Count;
            }
        }
    }

    /// <summary>Appends that surely failed.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Appends whose outcome is unknown (timed out).</summary>
    public long Unknown => Interlocked.Read(ref _unknown);

    /// <summary>The acknowledged appends so far: value, sequence number, epoch and server.</summary>
    public IReadOnlyList<Operation> Acknowledgements => [.. History.Operations.Where(o => o.Type == OpType.Ok && o.Function == OpFunction.Append)];

    /// <summary>The value each process is waiting on now (for "the call in flight when X happened").</summary>
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

    /// <summary>The highest epoch any acknowledgement so far came from.</summary>
    public long LatestEpoch
    {
        get
        {
            lock (_lock)
            {
                return _ackEpochs.Count == 0 ? 0 : _ackEpochs.Max(a => a.Epoch);
            }
        }
    }

    /// <summary>One append by <paramref name="process"/>, recorded; its sequence number, or null if it failed or timed out.</summary>
    public async Task<long?> AppendAsync(UnderstudyClient client, int process, string value, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        History.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Append, Time = Now, Value = value });
        lock (_lock)
        {
            _inFlight[process] = value;
        }

        try
        {
            var reply = await client.SendAsync(RequestKind.Write, MessageStoreCommands.Append(value), null, cancellationToken).ConfigureAwait(false);
            var done = Now;
            var seq = MessageStoreCommands.DecodeSeq(reply.Payload.Span);
            History.Add(new Operation
            {
                Process = process,
                Type = OpType.Ok,
                Function = OpFunction.Append,
                Time = done,
                Value = value,
                Seq = seq,
                Epoch = reply.Epoch,
                Server = reply.Server.ToString(),
            });
            lock (_lock)
            {
                var at = _ackTimes.BinarySearch(done);
                _ackTimes.Insert(at < 0 ? ~at : at, done);
                _ackEpochs.Add((done, reply.Epoch));
            }

            return seq;
        }
        catch (UnderstudyException e)
        {
            var type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info;
            Interlocked.Increment(ref type == OpType.Fail ? ref _failed : ref _unknown);
            if (e.Message.Contains("no lease", StringComparison.OrdinalIgnoreCase))
            {
                Interlocked.Increment(ref _leaseRefused);
            }

            History.Add(new Operation { Process = process, Type = type, Function = OpFunction.Append, Time = Now, Value = value, Error = e.Message });
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

    /// <summary>One read of <paramref name="count"/> messages from <paramref name="from"/>, recorded; null if it failed or timed out.</summary>
    public async Task<IReadOnlyList<SequencedMessage>?> ReadAsync(UnderstudyClient client, int process, long from, int count, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        History.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Read, Time = Now, ReadFrom = from, ReadLimit = count });
        try
        {
            var reply = await client.SendAsync(RequestKind.Read, MessageStoreCommands.Read(from, count), null, cancellationToken).ConfigureAwait(false);
            var page = MessageStoreCommands.DecodeMessages(reply.Payload.Span);
            History.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Read, Time = Now, ReadFrom = from, ReadValues = [.. page.Select(m => m.Text)], Epoch = reply.Epoch, Server = reply.Server.ToString() });
            return page;
        }
        catch (UnderstudyException e)
        {
            History.Add(new Operation { Process = process, Type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info, Function = OpFunction.Read, Time = Now, Error = e.Message });
            return null;
        }
    }

    /// <summary>One count of the log's messages, recorded; null if it failed or timed out.</summary>
    public async Task<long?> CountAsync(UnderstudyClient client, int process, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        History.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Count, Time = Now });
        try
        {
            var count = await client.CountAsync(cancellationToken).ConfigureAwait(false);
            History.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Count, Time = Now, Count = count });
            return count;
        }
        catch (UnderstudyException e)
        {
            History.Add(new Operation { Process = process, Type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info, Function = OpFunction.Count, Time = Now, Error = e.Message });
            return null;
        }
    }

    /// <summary>
    /// One key-value call by its process (<paramref name="call"/>, from <see cref="KeyValueCalls"/>), recorded with its
    /// invoke and completion on this recorder's clock; an acknowledged one counts as service, as an acknowledged append does.
    /// </summary>
    public async Task<KvOperation> KeyValueAsync(UnderstudyClient client, KvOperation call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(call);
        var (kind, payload) = KeyValueCalls.Encode(call);
        var open = call with { InvokedAt = Now };
        var described = open.Describe();
        lock (_lock)
        {
            _inFlight[open.Process] = described;
        }

        KvOperation done;
        try
        {
            var reply = kind == RequestKind.Read
                ? await client.QueryAsync(payload, cancellationToken).ConfigureAwait(false)
                : await client.ExecuteAsync(payload, cancellationToken).ConfigureAwait(false);
            var at = Now;
            done = KeyValueCalls.Acknowledged(open, KeyValueCommands.DecodeResult(reply.Payload.Span), at);
            lock (_lock)
            {
                var index = _ackTimes.BinarySearch(at);
                _ackTimes.Insert(index < 0 ? ~index : index, at);
                _ackEpochs.Add((at, reply.Epoch));
            }
        }
        catch (UnderstudyException e)
        {
            var failed = e.Outcome == OutcomeKind.Failed;
            Interlocked.Increment(ref failed ? ref _failed : ref _unknown);
            if (e.Message.Contains("no lease", StringComparison.OrdinalIgnoreCase))
            {
                Interlocked.Increment(ref _leaseRefused);
            }

            done = failed ? open with { Outcome = KvOutcome.Failed, CompletedAt = Now } : open;
        }
        finally
        {
            lock (_lock)
            {
                _inFlight.Remove(open.Process);
            }
        }

        KeyValueHistory.Add(done);
        return done;
    }

    /// <summary>Waits until <paramref name="count"/> appends in all have been acknowledged; the timeout says how many were and the last errors.</summary>
    public Task WaitForAcknowledgedAsync(int count, TimeSpan timeout, string phase, CancellationToken cancellationToken) =>
        Poll.UntilAsync(() => Acknowledged >= count, timeout, phase, () => $"expected at least {count} acknowledged appends, have {Acknowledged}; last errors: {LastErrors()}", cancellationToken);

    /// <summary>
    /// Waits for the first acknowledgement after <paramref name="time"/> from an epoch after <paramref name="epoch"/>
    /// (acknowledgements the old primary sent just before it died do not count as service); its time, or -1 at the deadline.
    /// </summary>
    public async Task<long> WaitForAckAfterAsync(long time, long epoch, TimeSpan timeout, CancellationToken cancellationToken)
    {
        long First()
        {
            lock (_lock)
            {
                return _ackEpochs.Where(a => a.Time > time && a.Epoch > epoch).Select(a => a.Time).DefaultIfEmpty(-1).Min();
            }
        }

        // Polled every 2 ms: the caller acts (restarts the old primary, prints) as soon as service is back.
        var first = await Poll.TryForAsync(_ => Task.FromResult<long?>(First()), t => t >= 0, timeout, TimeSpan.FromMilliseconds(2), cancellationToken).ConfigureAwait(false);
        return first ?? -1;
    }

    /// <summary>The last acknowledgement at or before <paramref name="time"/>, and the first after it (µs; -1 if none).</summary>
    public (long LastBefore, long FirstAfter) AcksAround(long time)
    {
        lock (_lock)
        {
            var index = _ackTimes.BinarySearch(time);
            if (index < 0)
            {
                index = ~index;
            }
            else
            {
                while (index < _ackTimes.Count && _ackTimes[index] <= time)
                {
                    index++;
                }
            }

            return (index > 0 ? _ackTimes[index - 1] : -1, index < _ackTimes.Count ? _ackTimes[index] : -1);
        }
    }

    /// <summary>
    /// Client-observed unavailability around a fault at <paramref name="time"/>: from the last acknowledgement
    /// before it to the first after it (from an epoch after <paramref name="epoch"/> when the fault caused a
    /// promotion). NaN when there is no acknowledgement on one side.
    /// </summary>
    public double UnavailableMs(long time, long? epoch)
    {
        lock (_lock)
        {
            var before = _ackEpochs.Where(a => a.Time <= time).Select(a => a.Time).DefaultIfEmpty(-1).Max();
            var after = _ackEpochs.Where(a => a.Time > time && (epoch is null || a.Epoch > epoch)).Select(a => a.Time).DefaultIfEmpty(-1).Min();
            return before < 0 || after < 0 ? double.NaN : (after - before) / 1000.0;
        }
    }

    /// <summary>
    /// The longest pause in service from the last acknowledgement at or before <paramref name="from"/> to the first
    /// at or after <paramref name="to"/> (µs): the write stall of a fault that needs no promotion.
    /// </summary>
    public double LongestGapMs(long from, long to)
    {
        lock (_lock)
        {
            // No acknowledgement before the fault yet (the writers just started): count from the fault itself.
            var start = _ackTimes.Where(t => t <= from).DefaultIfEmpty(from).Max();
            var longest = 0L;
            var previous = start;
            foreach (var t in _ackTimes.Where(t => t > from && t <= to))
            {
                longest = Math.Max(longest, t - previous);
                previous = t;
            }

            return longest / 1000.0;
        }
    }

    /// <summary>The highest epoch of any acknowledgement at or before <paramref name="time"/>.</summary>
    public long EpochAt(long time)
    {
        lock (_lock)
        {
            return _ackEpochs.Where(a => a.Time <= time).Select(a => a.Epoch).DefaultIfEmpty(0).Max();
        }
    }

    /// <summary>Errors of calls that did not succeed, newest last.</summary>
    public string LastErrors(int count = 5)
    {
        var errors = History.Operations.Where(o => o.Type is OpType.Fail or OpType.Info).TakeLast(count).Select(o => $"{o.Value}: {o.Error}").ToList();
        return errors.Count == 0 ? "none" : string.Join("; ", errors);
    }

    /// <summary>Judges the history against the final log (the messages' texts in log order).</summary>
    public CheckResult Check(IReadOnlyList<string> finalLog) => HistoryChecker.Check(History, finalLog);
}

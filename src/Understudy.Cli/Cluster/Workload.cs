using System.Diagnostics;
using Understudy.Client;
using Understudy.Checking;
using Understudy.Core.Client;
using Understudy.Protocol;

namespace Understudy.Cli.Cluster;

/// <summary>
/// Client workers against a real cluster, recording every call as a Jepsen-style history (invoke, then
/// ok / fail / info) and every acknowledgement's time, so gaps in service can be measured around faults.
/// </summary>
internal sealed class Workload : IAsyncDisposable
{
    private readonly List<UnderstudyClient> _clients = [];
    private readonly List<Task> _workers = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _acksLock = new();
    private readonly List<long> _ackTimes = [];
    private readonly List<(long Time, long Epoch)> _ackEpochs = [];
    private readonly int _readPercent;
    private readonly int _payloadBytes;
    private long _failed;
    private long _unknown;

    public Workload(NodeAddress monitor, int workers, TimeSpan requestTimeout, int readPercent = 0, int payloadBytes = 0, int clients = 1)
    {
        _readPercent = readPercent;
        _payloadBytes = payloadBytes;
        for (var i = 0; i < Math.Max(1, clients); i++)
        {
            _clients.Add(new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitor = monitor,
                Retry = new ClientOptions { RequestTimeout = requestTimeout },
            }));
        }

        Workers = workers;
    }

    public int Workers { get; }

    public History History { get; } = new();

    /// <summary>Microseconds since the workload was created (the history's clock).</summary>
    public long Now => _clock.Elapsed.Ticks / 10;

    public long Acknowledged
    {
        get
        {
            lock (_acksLock)
            {
                return _ackTimes.Count;
            }
        }
    }

    public long Failed => Interlocked.Read(ref _failed);

    public long Unknown => Interlocked.Read(ref _unknown);

    /// <summary>The first client (for watching primary changes and reading back).</summary>
    public UnderstudyClient Client => _clients[0];

    public async Task WaitForPrimaryAsync(CancellationToken cancellationToken)
    {
        foreach (var c in _clients)
        {
            await c.WaitForPrimaryAsync(cancellationToken);
        }
    }

    public void Start()
    {
        for (var w = 0; w < Workers; w++)
        {
            var process = w;
            var client = _clients[w % _clients.Count];
            _workers.Add(Task.Run(() => RunAsync(process, client, _stop.Token)));
        }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    /// <summary>The last acknowledgement at or before <paramref name="time"/>, and the first after it (µs; -1 if none).</summary>
    public (long LastBefore, long FirstAfter) AcksAround(long time)
    {
        lock (_acksLock)
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
    /// Waits for the first acknowledgement after <paramref name="time"/> from an epoch after
    /// <paramref name="epoch"/>: acknowledgements the old primary sent just before it died do not count as service.
    /// </summary>
    public async Task<long> WaitForAckAfterAsync(long time, long epoch, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            lock (_acksLock)
            {
                var first = _ackEpochs.Where(a => a.Time > time && a.Epoch > epoch).Select(a => a.Time).DefaultIfEmpty(-1).Min();
                if (first >= 0)
                {
                    return first;
                }
            }

            await Task.Delay(2, cancellationToken);
        }

        return -1;
    }

    /// <summary>
    /// Client-observed unavailability around a fault at <paramref name="time"/>: from the last acknowledgement
    /// before it to the first after it (from an epoch after <paramref name="epoch"/> when the fault caused a
    /// promotion). NaN when there is no acknowledgement on one side.
    /// </summary>
    public double UnavailableMs(long time, long? epoch)
    {
        lock (_acksLock)
        {
            var before = _ackEpochs.Where(a => a.Time <= time).Select(a => a.Time).DefaultIfEmpty(-1).Max();
            var after = _ackEpochs.Where(a => a.Time > time && (epoch is null || a.Epoch > epoch)).Select(a => a.Time).DefaultIfEmpty(-1).Min();
            return before < 0 || after < 0 ? double.NaN : (after - before) / 1000.0;
        }
    }

    /// <summary>The highest epoch of any acknowledgement at or before <paramref name="time"/>.</summary>
    public long EpochAt(long time)
    {
        lock (_acksLock)
        {
            return _ackEpochs.Where(a => a.Time <= time).Select(a => a.Epoch).DefaultIfEmpty(0).Max();
        }
    }

    /// <summary>The highest epoch any acknowledgement so far came from.</summary>
    public long LatestEpoch
    {
        get
        {
            lock (_acksLock)
            {
                return _ackEpochs.Count == 0 ? 0 : _ackEpochs.Max(a => a.Epoch);
            }
        }
    }

    private async Task RunAsync(int process, UnderstudyClient client, CancellationToken cancellationToken)
    {
        var random = new Random(process * 7919);
        var padding = _payloadBytes > 0 ? new string('x', _payloadBytes) : string.Empty;
        for (var n = 1; !cancellationToken.IsCancellationRequested; n++)
        {
            var read = _readPercent > 0 && random.Next(100) < _readPercent;
            var invoked = Now;
            if (read)
            {
                History.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Count, Time = invoked });
                try
                {
                    var count = await client.CountAsync(CancellationToken.None);
                    History.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Count, Time = Now, Count = count });
                }
                catch (UnderstudyException e)
                {
                    History.Add(new Operation { Process = process, Type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info, Function = OpFunction.Count, Time = Now, Error = e.Message });
                }

                continue;
            }

            var value = _payloadBytes > 0 ? $"w{process}-{n}-{padding}" : $"w{process}-{n}";
            History.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Append, Time = invoked, Value = value });
            try
            {
                // Calls are never abandoned halfway: stopping lets each open call finish or time out, so the
                // history ends with a completion for every invoke.
                var reply = await client.SendAsync(RequestKind.Write, Core.StateMachines.MessageLogCommands.Append(value), null, CancellationToken.None);
                var done = Now;
                History.Add(new Operation
                {
                    Process = process,
                    Type = OpType.Ok,
                    Function = OpFunction.Append,
                    Time = done,
                    Value = value,
                    Seq = Core.StateMachines.MessageLogCommands.DecodeSeq(reply.Payload.Span),
                    Epoch = reply.Epoch,
                    Server = reply.Server.ToString(),
                });
                lock (_acksLock)
                {
                    var at = _ackTimes.BinarySearch(done);
                    _ackTimes.Insert(at < 0 ? ~at : at, done);
                    _ackEpochs.Add((done, reply.Epoch));
                }
            }
            catch (UnderstudyException e)
            {
                var type = e.Outcome == OutcomeKind.Failed ? OpType.Fail : OpType.Info;
                Interlocked.Increment(ref type == OpType.Fail ? ref _failed : ref _unknown);
                History.Add(new Operation { Process = process, Type = type, Function = OpFunction.Append, Time = Now, Value = value, Error = e.Message });
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        foreach (var c in _clients)
        {
            await c.DisposeAsync();
        }

        _stop.Dispose();
    }
}

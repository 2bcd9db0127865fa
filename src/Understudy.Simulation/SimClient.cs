using System.Text;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Core.Client;
using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// A client worker (a Jepsen "process"): the real <see cref="ClientSession"/>, calling one operation at
/// a time and recording each invoke and completion in the history.
/// </summary>
internal sealed class SimClient : SimNode, IClientEnvironment
{
    private readonly SimCluster _cluster;
    private readonly NodeClock _clock;
    private readonly int _process;
    private readonly bool _record;
    private readonly KeyValueCalls? _keyValue;
    private Operation? _open;
    private Action<ClientResult>? _onComplete;
    private int _written;
    private long _readFrom = 1;
    private int _monitor;

    public SimClient(SimCluster cluster, int process, bool record)
        : base(cluster.World, process < 0 ? "check" : $"c{process}")
    {
        _cluster = cluster;
        _process = process;
        _record = record;
        _clock = new NodeClock(cluster.World, cluster.World.Random.NextInt64(1_000_000, 1_000_000_000), (cluster.World.Random.NextDouble() - 0.5) * 0.01);
        Ref = new ClientRef(process < 0 ? 1_000_000 : process);
        _monitor = Math.Max(0, process) % cluster.Monitors.Count;
        Session = new ClientSession(cluster.World.Random.NextUInt64(), cluster.World.Options.Client, this, _clock, new Random(cluster.World.Random.Next()));
        if (record && cluster.World.Options.StateMachine == SimulatedStateMachine.KeyValue)
        {
            _keyValue = new KeyValueCalls(cluster.World, process, Name);
        }
    }

    public ClientRef Ref { get; }

    public ClientSession Session { get; }

    public bool Active { get; set; }

    public bool Idle => _open is null && _onComplete is null && _keyValue is not { IsOpen: true };

    public void Start()
    {
        Life++;
        Up = true;
        Session.Start();
        ScheduleTicks(Session.Tick);
    }

    /// <summary>Starts the workload: random appends, reads and counts separated by think time.</summary>
    public void BeginWorkload()
    {
        Active = true;
        ScheduleNext();
    }

    /// <summary>Runs one call outside the recorded history (the final read).</summary>
    public void Call(RequestKind kind, byte[] payload, TimeSpan timeout, Action<ClientResult> done)
    {
        _onComplete = done;
        Session.Submit(kind, payload, timeout);
    }

    /// <summary>What the client library takes: responses from servers, primary updates from the monitor.</summary>
    protected override void Take(SimNode from, IMessage message)
    {
        switch (message)
        {
            case ClientResponse response when from is SimServer server:
                Session.Handle(server.Address, response);
                break;
            case PrimaryUpdate update when from is SimMonitor:
                Session.Handle(update);
                break;
            default:
                Reject(from, $"a client does not take {message.Type} from {from.Name}");
                break;
        }
    }

    public void OnServerConnectionLost(NodeAddress server) => Session.OnServerConnectionLost(server);

    protected override void AfterInput()
    {
    }

    private void ScheduleNext()
    {
        var life = Life;
        World.After(World.Exponential(World.Options.MeanThinkTime), () => Deliver(life, Invoke));
    }

    private void Invoke()
    {
        if (!Active || !Idle)
        {
            return;
        }

        if (_keyValue is not null)
        {
            var (kind, payload) = _keyValue.Next();
            Session.Submit(kind, payload);
            return;
        }

        var roll = World.Random.Next(100);
        var now = World.Now;
        if (roll < 70)
        {
            var value = $"{Name}-{++_written}";
            _open = new Operation { Process = _process, Type = OpType.Invoke, Function = OpFunction.Append, Time = now, Value = value };
            Record(_open);
            Session.Submit(RequestKind.Write, MessageStoreCommands.Append(value));
        }
        else if (roll < 85)
        {
            _open = new Operation { Process = _process, Type = OpType.Invoke, Function = OpFunction.Read, Time = now, ReadFrom = _readFrom, ReadLimit = MessageStoreCommands.MaxReadCount };
            Record(_open);
            Session.Submit(RequestKind.Read, MessageStoreCommands.Read(_readFrom, MessageStoreCommands.MaxReadCount));
        }
        else
        {
            _open = new Operation { Process = _process, Type = OpType.Invoke, Function = OpFunction.Count, Time = now };
            Record(_open);
            Session.Submit(RequestKind.Read, MessageStoreCommands.Count());
        }
    }

    // ------------------------------------------------------------------ IClientEnvironment

    public void SendToServer(NodeAddress server, in ClientRequest request)
    {
        World.Send(this, _cluster.Server(server), request);

        // A client with a stale view of the primary asks another server: only one that may serve reads must answer.
        if (_keyValue is not null && request.Kind == RequestKind.Read && World.Random.Next(100) < World.Options.StrayReadPercent)
        {
            var servers = _cluster.Servers;
            var stray = servers[World.Random.Next(servers.Count)];
            if (stray.Address != server)
            {
                World.Send(this, stray, request);
            }
        }
    }

    /// <summary>
    /// Asks the monitor it is connected to; in a group, when that one is down or unreachable (the connection fails), moves
    /// on to the next, as the client library does.
    /// </summary>
    public void QueryMonitor()
    {
        var monitors = _cluster.Monitors;
        if (monitors.Count > 1)
        {
            for (var tries = 0; tries < monitors.Count && (!monitors[_monitor].Up || World.IsCut(this, monitors[_monitor])); tries++)
            {
                _monitor = (_monitor + 1) % monitors.Count;
            }
        }

        World.Send(this, monitors[_monitor], new PrimaryQuery(Session.ClientId, true), "PrimaryQuery");
    }

    public void Complete(in ClientResult result)
    {
        if (_onComplete is { } done)
        {
            _onComplete = null;
            done(result);
            return;
        }

        if (_keyValue?.Complete(result) is { } call)
        {
            World.KeyValueHistory.Add(call);
            if (World.Tracing)
            {
                World.Log(Name, KeyValueCalls.Describe(call) + (call.Outcome == KvOutcome.Ok ? $" by {result.Server} e{result.Epoch}" : $" {result.Error}"));
            }

            if (Active)
            {
                ScheduleNext();
            }

            return;
        }

        if (_open is not { } open)
        {
            return;
        }

        _open = null;
        var now = World.Now;
        var type = result.Outcome switch
        {
            OutcomeKind.Ok => OpType.Ok,
            OutcomeKind.Failed => OpType.Fail,
            _ => OpType.Info,
        };
        var completion = new Operation
        {
            Process = _process,
            Type = type,
            Function = open.Function,
            Time = now,
            Value = open.Value,
            Epoch = type == OpType.Ok ? result.Epoch : null,
            Server = type == OpType.Ok ? result.Server.ToString() : null,
            Error = type == OpType.Ok ? null : result.Error,
        };
        if (type == OpType.Ok)
        {
            switch (open.Function)
            {
                case OpFunction.Append:
                    completion = completion with { Seq = MessageStoreCommands.DecodeSeq(result.Payload.Span) };
                    break;
                case OpFunction.Read:
                    try
                    {
                        var messages = MessageStoreCommands.DecodeMessages(result.Payload.Span);
                        completion = completion with { ReadFrom = open.ReadFrom, ReadValues = [.. messages.Select(m => m.Text)] };
                    }
                    catch (MessagesRemovedException removed)
                    {
                        // Retention removed what it asked for: it read nothing, and reads from the first kept one next.
                        _readFrom = Math.Max(_readFrom, removed.FirstRetained);
                        completion = completion with { Type = OpType.Fail, Error = removed.Message, Epoch = null, Server = null };
                    }

                    break;
                case OpFunction.Count:
                    completion = completion with { Count = MessageStoreCommands.DecodeSeq(result.Payload.Span) };
                    break;
            }
        }

        Record(completion);
        if (Active)
        {
            ScheduleNext();
        }
    }

    public void Report(in ClientEvent e)
    {
        if (World.Tracing && e.Kind == ClientEventKind.PrimaryChanged)
        {
            World.Log(Name, $"primary is now {e.Primary} (epoch {e.Epoch}, {e.Detail})");
        }
    }

    private void Record(Operation op)
    {
        if (_record)
        {
            World.History.Add(op);
        }

        if (World.Tracing)
        {
            var detail = op.Type switch
            {
                OpType.Invoke => op.Value ?? string.Empty,
                OpType.Ok => op.Function switch
                {
                    OpFunction.Append => $"{op.Value} -> seq {op.Seq} by {op.Server} e{op.Epoch}",
                    OpFunction.Read => $"{op.ReadValues?.Count} messages",
                    _ => $"count {op.Count}",
                },
                _ => $"{op.Value} {op.Error}",
            };
            World.Log(Name, $"{op.Type.ToString().ToUpperInvariant()} {op.Function} {detail}");
        }
    }

    /// <summary>Text of a failure (for traces).</summary>
    public static string Text(ReadOnlyMemory<byte> payload) => Encoding.UTF8.GetString(payload.Span);
}

using System.Buffers;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>What a <see cref="PromotionRehearsal"/> got through: writes committed and reads answered by its primary, and messages sent through the codec.</summary>
public readonly record struct RehearsalOutcome(int WritesCommitted, int ReadsAnswered, int MessagesCoded);

/// <summary>
/// Runs a primary's half of the core once, on throwaway nodes, so that the process has compiled it before its first
/// real promotion. A server that has only ever been a backup has never run the primary's code: the role, the followers'
/// progress, frames out and acknowledgements in, the commit, the answers to clients. The JIT compiles those methods on
/// first use, a few hundred of them, and on a busy 2-core machine that took tens of milliseconds of a failover, during
/// which no client was served (docs/BENCHMARKS.md, "Round 30").
/// </summary>
/// <remarks>
/// Two fresh <see cref="ServerNode"/>s, a primary and its one backup, exchange messages through an in-memory stage:
/// every message goes through the real codec (encoded to a frame and decoded again, as the TCP host does), syncs
/// complete at once, and a stand-in monitor answers heartbeats with a lease. The primary takes a few writes and reads,
/// replicates, commits and answers them. Nothing of it touches the disk, the network or the server's own node, and it
/// runs only built-in state machines (a user's machine may have effects outside itself): the primary's code around the
/// state machine is the same for every machine, and a backup has already run the machine's own apply.
/// </remarks>
public static class PromotionRehearsal
{
    private const int Writes = 8;
    private const int Reads = 2;
    private const int MaxSteps = 500;

    /// <summary>
    /// Rehearses a promotion with <paramref name="options"/> (the server's own, so the same paths run) and a fresh
    /// <paramref name="machine"/> per node, which must be a built-in one.
    /// </summary>
    public static RehearsalOutcome Run(ServerOptions options, BuiltInStateMachine machine, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        var primary = new NodeAddress("rehearsal", 1);
        var backup = new NodeAddress("rehearsal", 2);
        var config = new ClusterConfig
        {
            Epoch = 1,
            Version = 1,
            Primary = primary,
            InSync = [primary, backup],
            Members = [new MemberInfo(primary, 2), new MemberInfo(backup, 1)],
        };

        // Two nodes are all there is here: a larger min-in-sync would refuse every write and rehearse nothing.
        var nodeOptions = options with { MinInSync = Math.Min(options.MinInSync, 2) };
        var factory = machine.Factory(MessageRetention.KeepEverything);
        var stage = new Stage(config);
        stage.Add(primary, new ServerNode(primary, 1, nodeOptions, factory(), stage.For(primary), time));
        stage.Add(backup, new ServerNode(backup, 2, nodeOptions, factory(), stage.For(backup), time));

        // The monitor's promotion: the configuration to both, with a lease for the primary as a real push carries.
        stage.Deliver(backup, new ConfigPush(config, 0, 0));
        stage.Deliver(primary, new ConfigPush(config, time.GetTimestamp(), Stage.LeaseMs));
        stage.Run();

        var client = new ClientRef(1);
        for (var seq = 1; seq <= Writes; seq++)
        {
            var payload = machine == BuiltInStateMachine.Kv
                ? KeyValueCommands.Put("rehearsal", "value")
                : MessageStoreCommands.Append("rehearsal");
            stage.Deliver(primary, new ClientRequest(1, seq, 1, RequestKind.Write, payload), client);
            stage.Run();
        }

        for (var seq = Writes + 1; seq <= Writes + Reads; seq++)
        {
            var query = machine == BuiltInStateMachine.Kv ? KeyValueCommands.Get("rehearsal") : MessageStoreCommands.Count();
            stage.Deliver(primary, new ClientRequest(1, seq, seq, RequestKind.Read, query), client);
            stage.Run();
        }

        return stage.Outcome();
    }

    /// <summary>The in-memory world of a rehearsal: a queue of coded messages, syncs that complete at once, a monitor that grants leases.</summary>
    private sealed class Stage(ClusterConfig config)
    {
        private readonly Dictionary<NodeAddress, ServerNode> _nodes = [];
        private readonly Queue<(NodeAddress To, ClientRef From, IMessage Message)> _messages = new();
        private readonly Queue<(NodeAddress Node, long Through, long Generation)> _syncs = new();
        private int _writesOk;
        private int _readsOk;
        private int _coded;

        /// <summary>The lease the stand-in monitor grants: long enough that no rehearsal outlives it.</summary>
        public const int LeaseMs = 2_000;

        public void Add(NodeAddress address, ServerNode node) => _nodes[address] = node;

        public NodeStage For(NodeAddress address) => new NodeStage(this, address);

        public void Deliver<T>(NodeAddress to, in T message, ClientRef from = default)
            where T : IMessage => _messages.Enqueue((to, from, Code(message)));

        /// <summary>Delivers messages and completes syncs until nothing is left (bounded: a rehearsal never spins).</summary>
        public void Run()
        {
            for (var step = 0; step < MaxSteps && (_messages.Count > 0 || _syncs.Count > 0); step++)
            {
                // One input per turn, and the turn's end sends what it produced (frames, syncs, acks), as the host's loop does.
                if (_syncs.TryDequeue(out var sync))
                {
                    var node = _nodes[sync.Node];
                    node.OnLogSynced(sync.Through, sync.Generation);
                    node.Flush();
                }
                else if (_messages.TryDequeue(out var m))
                {
                    var node = _nodes[m.To];
                    ServerInbox.Deliver(node, m.From, m.Message);
                    node.Flush();
                }

                if (_messages.Count == 0 && _syncs.Count == 0)
                {
                    foreach (var node in _nodes.Values)
                    {
                        node.Tick();
                        node.Flush();
                    }
                }
            }
        }

        public RehearsalOutcome Outcome() => new(_writesOk, _readsOk, _coded);

        /// <summary>Encodes <paramref name="message"/> to a frame and decodes it again, as the host's connections do.</summary>
        public IMessage Code<T>(in T message)
            where T : IMessage
        {
            var frame = new ReadOnlySequence<byte>(MessageCodec.ToFrame(message));
            if (!MessageCodec.TryReadFrame(ref frame, MessageCodec.DefaultMaxFrameSize, out var type, out var body))
            {
                throw new InvalidOperationException($"a rehearsal's {message.Type} did not decode as one frame");
            }

            _coded++;
            return MessageCodec.Decode(type, body);
        }

        public void Sync(NodeAddress node, long through, long generation) => _syncs.Enqueue((node, through, generation));

        public void Answer(in ClientResponse response)
        {
            if (Code(response) is ClientResponse { Status: ResponseStatus.Ok } ok)
            {
                if (ok.Seq <= Writes)
                {
                    _writesOk++;
                }
                else
                {
                    _readsOk++;
                }
            }
        }

        /// <summary>The monitor's side: a heartbeat is answered with the configuration, and the primary's with a lease.</summary>
        public void Heartbeat(NodeAddress from, in Heartbeat beat)
        {
            var lease = from == config.Primary && beat.Role == ServerRole.Primary ? LeaseMs : 0;
            _messages.Enqueue((from, default, Code(new HeartbeatAck(config, beat.SentAt, lease, 1))));
        }
    }

    /// <summary>One node's view of the stage: what the node asks of the world, kept in memory.</summary>
    private sealed class NodeStage(Stage stage, NodeAddress self) : DisklessEnvironment
    {
        public override void SendToMonitor<T>(in T message)
        {
            if (stage.Code(message) is Heartbeat beat)
            {
                stage.Heartbeat(self, beat);
            }
        }

        public override void SendToServer<T>(NodeAddress to, in T message) => stage.Deliver(to, message);

        public override void Reply(ClientRef client, in ClientResponse response) => stage.Answer(response);

        public override void SyncLog(long throughIndex, long generation) => stage.Sync(self, throughIndex, generation);
    }
}

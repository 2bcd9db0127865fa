using System.Buffers;
using System.Globalization;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// The simulated world: one clock, one queue of events ordered by (time, insertion), one seeded
/// random source for every decision the world makes, and a network that delays, drops, duplicates,
/// reorders and partitions messages. Nothing here reads the real clock or the real network.
/// </summary>
internal sealed class SimWorld
{
    private readonly PriorityQueue<Action, (long Time, long Seq)> _queue = new();
    private readonly HashSet<(string, string)> _cut = [];
    private readonly Dictionary<int, List<(string, string)>> _partitions = [];
    private int _nextPartition;
    private readonly Dictionary<(string, string), long> _lastArrival = [];
    private readonly ArrayBufferWriter<byte> _encoder = new(1024);
    private readonly List<string>? _trace;
    private readonly bool _hashTrace;
    private ulong _traceHash = FnvOffset;
    private long _seq;

    private const ulong FnvOffset = 14695981039346656037UL;
    private const ulong FnvPrime = 1099511628211UL;

    public SimWorld(SimulationOptions options)
    {
        Options = options;
        Random = new Random(options.Seed);
        _trace = options.Trace ? [] : null;
        _hashTrace = options.TraceHash;
        Codec = options.Codec?.Invoke() ?? FrameCodec.Instance;

        // Each seed draws its own network weather, so the sweep covers calm and stormy links.
        Network = new NetworkProfile(
            MinLatency: 50 + Random.Next(200),
            MaxLatency: 500 + Random.Next(3000),
            DropRate: Pick([0, 0, 0.002, 0.01, 0.05]),
            DuplicateRate: Pick([0, 0, 0.005, 0.02]),
            SpikeRate: Pick([0, 0.002, 0.01]));
    }

    /// <summary>Simulated time in microseconds.</summary>
    public long Now { get; private set; }

    public SimulationOptions Options { get; }

    public Random Random { get; }

    public NetworkProfile Network { get; set; }

    /// <summary>Turns every message sent into frame bytes and back at delivery.</summary>
    public IFrameCodec Codec { get; }

    public Dictionary<string, long> Faults { get; } = new(StringComparer.Ordinal);

    public List<Violation> Violations { get; } = [];

    public History History { get; } = new();

    /// <summary>With the key-value store: every client call, as the linearizability checker takes them.</summary>
    public List<KvOperation> KeyValueHistory { get; } = [];

    public long EventsRun { get; private set; }

    public IReadOnlyList<string> Trace => _trace ?? [];

    public bool Tracing => _trace is not null || _hashTrace;

    /// <summary>FNV-1a over every trace line, in order: equal for two builds that behave the same.</summary>
    public ulong TraceHash => _traceHash;

    public static long Micros(TimeSpan span) => (long)(span.TotalMilliseconds * 1000);

    public void At(long time, Action action) => _queue.Enqueue(action, (Math.Max(time, Now), _seq++));

    public void After(long delay, Action action) => At(Now + delay, action);

    /// <summary>Runs events up to <paramref name="time"/> (inclusive), leaving the clock there.</summary>
    public void RunUntil(long time)
    {
        while (_queue.TryPeek(out _, out var key) && key.Time <= time)
        {
            var action = _queue.Dequeue();
            Now = key.Time;
            EventsRun++;
            action();
        }

        Now = Math.Max(Now, time);
    }

    /// <summary>Runs until <paramref name="condition"/> holds (checked every <paramref name="step"/> µs) or the deadline passes.</summary>
    public bool RunUntil(Func<bool> condition, long deadline, long step = 10_000)
    {
        while (Now < deadline)
        {
            if (condition())
            {
                return true;
            }

            RunUntil(Math.Min(deadline, Now + step));
        }

        return condition();
    }

    public void CountFault(string kind, long n = 1) => Faults[kind] = Faults.GetValueOrDefault(kind) + n;

    public void Log(string node, string text)
    {
        if (!Tracing)
        {
            return;
        }

        var line = string.Create(CultureInfo.InvariantCulture, $"{Now / 1000.0,10:F3}ms {node,-6} {text}");
        _trace?.Add(line);
        if (_hashTrace)
        {
            var hash = _traceHash;
            foreach (var c in line)
            {
                hash = (hash ^ c) * FnvPrime;
            }

            _traceHash = (hash ^ '\n') * FnvPrime;
        }
    }

    public bool IsCut(SimNode a, SimNode b) => _cut.Contains((a.Name, b.Name));

    /// <summary>Cuts every link between the two groups (both ways); returns an id to heal it by.</summary>
    public int Partition(IEnumerable<SimNode> side, IEnumerable<SimNode> otherSide)
    {
        var pairs = new List<(string, string)>();
        var others = otherSide.ToList();
        foreach (var a in side)
        {
            foreach (var b in others)
            {
                if (a != b)
                {
                    pairs.Add((a.Name, b.Name));
                    pairs.Add((b.Name, a.Name));
                }
            }
        }

        var id = ++_nextPartition;
        _partitions[id] = pairs;
        RebuildCuts();
        return id;
    }

    public void Heal(int partition)
    {
        if (_partitions.Remove(partition))
        {
            RebuildCuts();
        }
    }

    public void HealAll()
    {
        _partitions.Clear();
        _cut.Clear();
    }

    public bool HasPartition => _cut.Count > 0;

    private void RebuildCuts()
    {
        _cut.Clear();
        foreach (var pairs in _partitions.Values)
        {
            _cut.UnionWith(pairs);
        }
    }

    /// <summary>
    /// Sends a message as the bytes of one frame, encoded now by <see cref="Codec"/>: after a random delay
    /// <paramref name="to"/> decodes and takes it, unless the bytes are dropped or cut off. A duplicate is
    /// the same bytes delivered twice. <paramref name="what"/> names it in the trace (default: described from
    /// the message as sent).
    /// </summary>
    public void Send<T>(SimNode from, SimNode to, in T message, string? what = null)
        where T : IMessage
    {
        _encoder.ResetWrittenCount();
        Codec.Encode(_encoder, message);
        var frame = _encoder.WrittenSpan.ToArray();
        if (Tracing)
        {
            what ??= Describe.Message(message);
        }

        Transmit(from, to, what ?? string.Empty, frame);
    }

    private void Transmit(SimNode from, SimNode to, string what, byte[] frame)
    {
        if (IsCut(from, to))
        {
            return;
        }

        if (Network.DropRate > 0 && Random.NextDouble() < Network.DropRate)
        {
            CountFault("drop");
            if (Tracing)
            {
                Log(from.Name, $"-x {to.Name} {what} (dropped)");
            }

            return;
        }

        var life = to.Life;
        var arrival = Now + Latency();
        var link = (from.Name, to.Name);
        if (_lastArrival.TryGetValue(link, out var last) && arrival < last)
        {
            CountFault("reorder");
        }

        _lastArrival[link] = Math.Max(arrival, last);
        if (Tracing)
        {
            Log(from.Name, $"-> {to.Name} {what}");
        }

        Action receive = () => to.Receive(from, frame);
        At(arrival, () => to.Deliver(life, receive));
        if (Network.DuplicateRate > 0 && Random.NextDouble() < Network.DuplicateRate)
        {
            CountFault("duplicate");
            At(Now + Latency(), () => to.Deliver(life, receive));
        }
    }

    /// <summary>One network delay in µs: uniform, with rare long spikes (a congested link, a GC pause on the path).</summary>
    public long Latency()
    {
        var latency = Network.MinLatency + Random.NextInt64(Math.Max(1, Network.MaxLatency - Network.MinLatency));
        if (Network.SpikeRate > 0 && Random.NextDouble() < Network.SpikeRate)
        {
            CountFault("latency-spike");
            latency += 5_000 + Random.Next(80_000);
        }

        return latency;
    }

    public long Uniform(TimeSpan min, TimeSpan max) => Micros(min) + Random.NextInt64(Math.Max(1, Micros(max) - Micros(min)));

    public long Exponential(TimeSpan mean) => (long)(-Math.Log(1 - Random.NextDouble()) * Micros(mean));

    private double Pick(double[] choices) => choices[Random.Next(choices.Length)];
}

/// <summary>How a seed's network behaves (latencies in µs, rates per message).</summary>
internal sealed record NetworkProfile(long MinLatency, long MaxLatency, double DropRate, double DuplicateRate, double SpikeRate)
{
    public static NetworkProfile Calm => new(50, 1000, 0, 0, 0);
}

/// <summary>
/// A simulated process. Messages and timers for a process that crashed are lost; for a paused
/// process (SIGSTOP) they wait, and run in order when it resumes, with whatever stale view it had.
/// </summary>
internal abstract class SimNode(SimWorld world, string name)
{
    private readonly Queue<Action> _deferred = new();

    public SimWorld World { get; } = world;

    public string Name { get; } = name;

    public bool Up { get; protected set; }

    public bool Paused { get; private set; }

    /// <summary>Raised at every crash and restart: anything addressed to an earlier life is lost.</summary>
    public int Life { get; protected set; }

    public void Deliver(int life, Action action)
    {
        if (!Up || life != Life)
        {
            return;
        }

        if (Paused)
        {
            _deferred.Enqueue(action);
            return;
        }

        action();
        AfterInput();
    }

    /// <summary>
    /// A frame arrived from <paramref name="from"/> (on this node's loop): decode it with the world's codec,
    /// as the transport's reader would, and take the message. Bytes the codec cannot read are a violation,
    /// not a crash of the simulator.
    /// </summary>
    public void Receive(SimNode from, byte[] frame)
    {
        IMessage message;
        try
        {
            message = World.Codec.Decode(frame);
        }
        catch (ProtocolException e)
        {
            Reject(from, $"undecodable frame of {frame.Length} bytes: {e.Message}");
            return;
        }

        Take(from, message);
    }

    /// <summary>Takes a decoded message, as the host's dispatch would.</summary>
    protected abstract void Take(SimNode from, IMessage message);

    /// <summary>Records a message no correct peer would have sent this node.</summary>
    protected void Reject(SimNode from, string why) =>
        World.Violations.Add(new Violation(ViolationKind.Invariant, $"{Name} at {World.Now}us: from {from.Name}: {why}"));

    public void Pause() => Paused = true;

    public void Resume()
    {
        Paused = false;
        while (Up && !Paused && _deferred.TryDequeue(out var action))
        {
            action();
            AfterInput();
        }
    }

    /// <summary>Runs the node's Tick every tick interval (skipped while paused) until it crashes.</summary>
    protected void ScheduleTicks(Action tick)
    {
        var life = Life;
        var interval = SimWorld.Micros(World.Options.TickInterval);
        void Next()
        {
            World.After(interval - (interval / 10) + World.Random.NextInt64(interval / 5 + 1), () =>
            {
                if (!Up || life != Life)
                {
                    return;
                }

                if (!Paused)
                {
                    tick();
                    AfterInput();
                }

                Next();
            });
        }

        Next();
    }

    /// <summary>The process stops: what it deferred while paused dies with it, and timers of this life stop firing.</summary>
    protected void GoDown()
    {
        Up = false;
        Life++;
        _deferred.Clear();
        Paused = false;
    }

    /// <summary>After every input: send what it produced (Flush) and check invariants.</summary>
    protected abstract void AfterInput();
}

/// <summary>Helpers for naming messages in traces.</summary>
internal static class Describe
{
    public static string Message(IMessage m) => m switch
    {
        Replicate r => $"Replicate(e{r.Epoch} prev={r.PrevIndex}@{r.PrevEpoch} n={r.EntryCount} commit={r.CommitIndex})",
        ReplicateAck a => $"ReplicateAck(e{a.Epoch} {(a.Success ? "ok" : "no")} match={a.MatchIndex} end={a.LogEnd})",
        SnapshotChunk c => $"SnapshotChunk(e{c.Epoch} snapshot={c.SnapshotIndex} at={c.Offset} n={c.Data.Length} of={c.TotalLength})",
        SnapshotAck a => $"SnapshotAck(e{a.Epoch} snapshot={a.SnapshotIndex} next={a.NextOffset}{(a.Installed ? " installed" : string.Empty)})",
        Heartbeat h => $"Heartbeat(e{h.Epoch} {h.Role} end={h.LastIndex} commit={h.CommitIndex})",
        HeartbeatAck h => $"HeartbeatAck(v{h.Config.Version} e{h.Config.Epoch} primary={h.Config.Primary} lease={h.LeaseMs})",
        ConfigPush p => $"ConfigPush(v{p.Config.Version} e{p.Config.Epoch} primary={p.Config.Primary} in-sync=[{string.Join(",", p.Config.InSync)}] lease={p.LeaseMs})",
        InSyncChange c => $"InSyncChange({c.Op} {c.Member} v{c.ExpectedVersion})",
        InSyncChangeResult r => $"InSyncChangeResult({(r.Accepted ? "accepted" : "refused: " + r.Reason)} v{r.Config.Version})",
        ClientRequest c => $"ClientRequest({c.Kind} seq={c.Seq})",
        ClientResponse c => $"ClientResponse({c.Status} seq={c.Seq} e{c.Epoch})",
        PrimaryUpdate u => $"PrimaryUpdate(e{u.Epoch} {u.Primary})",
        _ => m.Type.ToString(),
    };
}

/// <summary>Random helpers the BCL lacks.</summary>
internal static class RandomExtensions
{
    /// <summary>A random 64-bit value (never 0: zero means "unknown" in incarnation fields).</summary>
    public static ulong NextUInt64(this Random random)
    {
        Span<byte> bytes = stackalloc byte[8];
        random.NextBytes(bytes);
        var value = BitConverter.ToUInt64(bytes);
        return value == 0 ? 1 : value;
    }
}

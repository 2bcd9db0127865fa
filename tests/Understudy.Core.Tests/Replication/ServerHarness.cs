using Microsoft.Extensions.Time.Testing;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// Drives one <see cref="ServerNode"/> the way its host does: each input is handled and followed by
/// <see cref="ServerNode.Flush"/>; the disk completes syncs only when the test says so.
/// </summary>
public sealed class ServerHarness
{
    public const ulong BackupIncarnation = 11;
    public const int LeaseMs = 500;

    private int _syncsCompleted;
    private int _delivered;

    private int _written;

    public ServerHarness(NodeAddress self, ServerOptions? options = null, long recoveredEpoch = 0, IEnumerable<LogEntry>? log = null, FakeTimeProvider? time = null, ListLogArchive? disk = null, ServerSnapshot? snapshot = null, MessageStore? machine = null, IStateMachine? stateMachine = null)
    {
        Self = self;
        Time = time ?? new FakeTimeProvider();
        Env = new RecordingServerEnvironment();
        Machine = machine ?? new MessageStore();
        Disk = disk;
        Node = new ServerNode(self, BackupIncarnation, options ?? new ServerOptions(), stateMachine ?? Machine, Env, Time, recoveredEpoch, log, archive: disk, snapshot: snapshot);
    }

    /// <summary>The log on disk, when the test gives one: appends, truncations and compactions reach it when the disk syncs.</summary>
    public ListLogArchive? Disk { get; }

    public NodeAddress Self { get; }

    public FakeTimeProvider Time { get; }

    public RecordingServerEnvironment Env { get; }

    public MessageStore Machine { get; }

    public ServerNode Node { get; }

    public long Now => Time.GetTimestamp();

    /// <summary>
    /// A primary of epoch 1 (config version 5) whose epoch-start entry is committed: every in-sync
    /// backup has acknowledged it and the primary's own disk has synced it. The recording starts empty.
    /// </summary>
    public static ServerHarness StartPrimary(NodeAddress[]? inSync = null, ServerOptions? options = null, bool requireServing = true, IStateMachine? stateMachine = null)
    {
        var h = new ServerHarness(P, options, stateMachine: stateMachine);
        var config = Config(1, 5, P, inSync ?? All);
        h.Push(config);
        h.SyncDisk();
        foreach (var b in config.InSync.Where(a => a != P))
        {
            h.AckFrom(b, 1);
        }

        if (requireServing)
        {
            Assert.True(h.Node.IsServing, "fixture: the primary should be serving");
        }

        h.Forget();
        return h;
    }

    /// <summary>Clears the recording (every sync requested so far must have been completed or be abandoned).</summary>
    public void Forget()
    {
        WriteDisk();
        _written = 0;
        Env.Clear();
        _syncsCompleted = 0;
        _delivered = 0;
    }

    /// <summary>A replication frame from <paramref name="from"/>.</summary>
    public static Replicate Frame(long epoch, NodeAddress from, long prevIndex, long prevEpoch, long commitIndex, params LogEntry[] entries) =>
        new(epoch, from, prevIndex, prevEpoch, commitIndex, 1234, entries);

    // ------------------------------------------------------------------ inputs, each followed by Flush

    public void Push(ClusterConfig config, bool withLease = true) =>
        Input(n => n.Handle(new ConfigPush(config, withLease ? Now : 0, withLease ? LeaseMs : 0)));

    /// <summary>The monitor's answer to a heartbeat sent at <paramref name="echo"/> (now if not given).</summary>
    public void HeartbeatAck(ClusterConfig? config = null, long? echo = null, int leaseMs = LeaseMs) =>
        Input(n => n.Handle(new HeartbeatAck(config ?? n.Config, echo ?? Now, leaseMs, 1)));

    public void Deliver(Replicate frame) => Input(n => n.Handle(frame));

    public void Deliver(ReplicateAck ack) => Input(n => n.Handle(ack));

    public void Deliver(SnapshotChunk chunk) => Input(n => n.Handle(chunk));

    public void Deliver(SnapshotAck ack) => Input(n => n.Handle(ack));

    public void Deliver(InSyncChangeResult result) => Input(n => n.Handle(result));

    public void Deliver(StepDown request) => Input(n => n.Handle(request));

    /// <summary>A backup's successful acknowledgement: it holds <paramref name="match"/> durably.</summary>
    public void AckFrom(NodeAddress backup, long match, long? verified = null, ulong incarnation = BackupIncarnation) =>
        Deliver(new ReplicateAck(Node.Epoch, backup, incarnation, true, match, verified ?? match, verified ?? match, 0, 0, 0, 0));

    public void Request(ClientRef client, ClientRequest request) => Input(n => n.Handle(client, request));

    public void Write(ClientRef client, ulong clientId, long seq, string text, long? firstIncomplete = null) =>
        Request(client, new ClientRequest(clientId, seq, firstIncomplete ?? 1, RequestKind.Write, MessageStoreCommands.Append(text)));

    public void Read(ClientRef client, ulong clientId, long seq) =>
        Request(client, new ClientRequest(clientId, seq, seq, RequestKind.Read, MessageStoreCommands.Count()));

    public void Tick() => Input(n => n.Tick());

    /// <summary>Several inputs handled back to back, then one Flush (what the host does with a full socket buffer).</summary>
    public void Batch(Action<ServerNode> inputs) => Input(inputs);

    public void Input(Action<ServerNode> input)
    {
        input(Node);
        Node.Flush();
    }

    /// <summary>The disk completes every sync requested so far; false when there was none to complete.</summary>
    public bool SyncDisk()
    {
        var any = false;
        var syncs = Env.Syncs;
        while (_syncsCompleted < syncs.Count)
        {
            var s = syncs[_syncsCompleted++];
            WriteDisk();
            Input(n => n.OnLogSynced(s.ThroughIndex, s.Generation));
            syncs = Env.Syncs;
            any = true;
        }

        return any;
    }

    /// <summary>Carries what the node wrote since the last call to <see cref="Disk"/>, in order.</summary>
    public void WriteDisk()
    {
        if (Disk is null)
        {
            return;
        }

        var calls = Env.Calls;
        for (; _written < calls.Count; _written++)
        {
            switch (calls[_written])
            {
                case AppendedLog a:
                    foreach (var e in a.Entries)
                    {
                        Disk.Write(e);
                    }

                    break;
                case TruncatedLog t:
                    Disk.TruncateFrom(t.FromIndex);
                    break;
                case CompactedLog c:
                    Disk.RemoveBelow(c.BelowIndex);
                    break;
                case ResetLogCall r:
                    Disk.ResetTo(r.AfterIndex);
                    break;
            }
        }
    }

    /// <summary>Advances time in heartbeat-sized steps, ticking (and renewing the lease when asked) at each.</summary>
    public void Advance(TimeSpan by, bool renewLease = false)
    {
        var step = TimeSpan.FromMilliseconds(10);
        for (var elapsed = TimeSpan.Zero; elapsed < by; elapsed += step)
        {
            Time.Advance(step);
            if (renewLease)
            {
                HeartbeatAck();
            }

            Tick();
        }
    }

    /// <summary>Messages sent to other servers since the last call (the host's outbox).</summary>
    public List<SentToServer> TakeOutbox()
    {
        var calls = Env.Calls;
        var result = new List<SentToServer>();
        for (; _delivered < calls.Count; _delivered++)
        {
            if (calls[_delivered] is SentToServer s)
            {
                result.Add(s);
            }
        }

        return result;
    }

    public static ClientResponse Single(List<ClientResponse> replies) => Assert.Single(replies);

    public static long Seq(ClientResponse response) => MessageStoreCommands.DecodeSeq(response.Payload.Span);
}

/// <summary>Carries messages between real server nodes until nothing moves, completing every disk sync.</summary>
public static class Network
{
    public static void Pump(params ServerHarness[] servers)
    {
        var byAddress = servers.ToDictionary(s => s.Self);
        for (var round = 0; round < 1000; round++)
        {
            var moved = false;
            foreach (var s in servers)
            {
                moved |= s.SyncDisk();
                foreach (var sent in s.TakeOutbox())
                {
                    if (!byAddress.TryGetValue(sent.To, out var target))
                    {
                        continue;
                    }

                    moved = true;
                    switch (sent.Message)
                    {
                        case Replicate frame: target.Deliver(frame); break;
                        case ReplicateAck ack: target.Deliver(ack); break;
                        case SnapshotChunk chunk: target.Deliver(chunk); break;
                        case SnapshotAck ack: target.Deliver(ack); break;
                        default: throw new InvalidOperationException($"unexpected {sent.Message.Type} between servers");
                    }
                }
            }

            if (!moved)
            {
                return;
            }
        }

        throw new InvalidOperationException("the network did not settle");
    }
}

using BenchmarkDotNet.Attributes;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>
/// The primary's write path without I/O: <see cref="Batch"/> client writes arrive in one event-loop burst, one
/// Flush sends a replication frame to each of two backups and asks for one sync, the disk and both backups
/// answer, and the writes commit and are answered. Reported per write, so batching shows as a lower cost.
/// </summary>
[MemoryDiagnoser]
public class ServerNodeBenchmarks
{
    private static readonly NodeAddress Primary = new("127.0.0.1", 8090);
    private static readonly NodeAddress Backup1 = new("127.0.0.1", 8089);
    private static readonly NodeAddress Backup2 = new("127.0.0.1", 8088);
    private const int Clients = 64;
    private const int Invocations = 2048;

    private readonly byte[] _command = Fixtures.AppendCommand(64);
    private readonly long[] _seq = new long[Clients];
    private CountingEnvironment _env = null!;
    private ServerNode _node = null!;
    private int _nextClient;

    [Params(1, 64)]
    public int Batch { get; set; }

    [IterationSetup]
    public void StartPrimary()
    {
        // A fresh primary per iteration keeps the in-memory log (it is never trimmed) from growing without end.
        _env = new CountingEnvironment();
        _node = Fixtures.StartNode(Primary, _env, Primary, Backup2, Backup1);
        Commit();
        if (!_node.IsServing)
        {
            throw new InvalidOperationException("the benchmark's primary is not serving");
        }

        Array.Clear(_seq);
    }

    [Benchmark(OperationsPerInvoke = 1)]
    [InvocationCount(Invocations)]
    public long AppendFlushCommit()
    {
        for (var i = 0; i < Batch; i++)
        {
            var client = _nextClient++ % Clients;
            var seq = ++_seq[client];
            _node.Handle(new ClientRef(client), new ClientRequest((ulong)client + 1, seq, seq, RequestKind.Write, _command));
        }

        _node.Flush();
        Commit();
        return _env.Replies;
    }

    /// <summary>The disk syncs everything and both backups acknowledge it all, as fast as possible.</summary>
    private void Commit()
    {
        var last = _node.LastIndex;
        _node.OnLogSynced(last, _env.SyncGeneration);
        _node.Handle(new ReplicateAck(_node.Epoch, Backup1, 7, true, last, last, last, 0, 0, 0, 0));
        _node.Handle(new ReplicateAck(_node.Epoch, Backup2, 7, true, last, last, last, 0, 0, 0, 0));
        _node.Flush();
    }
}

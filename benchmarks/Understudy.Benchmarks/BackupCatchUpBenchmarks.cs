using BenchmarkDotNet.Attributes;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>
/// A backup catching up, without I/O: frames of <see cref="FrameEntries"/> 64-byte writes arrive as bytes from a
/// primary that has committed far past them; each is decoded, checked, appended to the log window and applied (all of
/// it commits at once), and the node flushes. Reported per frame: divide by <see cref="FrameEntries"/> for one entry.
/// This is the backup's per-entry work that issue 9's catch-up target needs cheap; the disk's part is in
/// <see cref="DurableLogBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class BackupCatchUpBenchmarks
{
    private static readonly NodeAddress Primary = new("127.0.0.1", 8090);
    private static readonly NodeAddress Backup = new("127.0.0.1", 8089);
    private const int Frames = 16;
    private const int Clients = 64;

    private byte[][] _frames = [];
    private CountingEnvironment _env = null!;
    private ServerNode _node = null!;
    private int _next;

    /// <summary>Entries per frame: the primary's catch-up batch (<see cref="ServerOptions.CatchUpBatchEntries"/>).</summary>
    [Params(8192)]
    public int FrameEntries { get; set; }

    [GlobalSetup]
    public void EncodeFrames()
    {
        var command = Fixtures.AppendCommand(64);
        var seq = new long[Clients];
        var commit = ((long)Frames * FrameEntries) + 1_000_000;
        _frames = new byte[Frames][];
        for (var f = 0; f < Frames; f++)
        {
            var prev = (long)f * FrameEntries;
            var entries = new LogEntry[FrameEntries];
            for (var i = 0; i < entries.Length; i++)
            {
                var client = i % Clients;
                var s = ++seq[client];
                entries[i] = new LogEntry(prev + i + 1, 1, EntryKind.Command, (ulong)client + 1, s, s, command, 1_700_000_000_000 + ((prev + i) / 100));
            }

            var frame = new Replicate(1, Primary, prev, prev == 0 ? 0 : 1, commit, 0, entries);
            _frames[f] = new byte[frame.Size];
            frame.Format(_frames[f]);
        }
    }

    [IterationSetup]
    public void StartBackup()
    {
        // A fresh backup per iteration: without a disk behind it its log window is never trimmed.
        _env = new CountingEnvironment();
        _node = Fixtures.StartNode(Backup, _env, Primary, Backup);
        _next = 0;
    }

    [IterationCleanup]
    public void CheckCommitted()
    {
        // An iteration may stop short of every frame (the engine's first, jitting run takes one).
        if (_node.CommitIndex != (long)_next * FrameEntries)
        {
            throw new InvalidOperationException($"the benchmark's backup committed through {_node.CommitIndex}, not the {_next * FrameEntries} entries it was sent");
        }
    }

    [Benchmark]
    [InvocationCount(Frames, 1)]
    public long AcceptFrame()
    {
        // As the TCP host does: the decoded frame's entry array goes back to the pool once the node has handled it.
        var frame = Replicate.Parse(_frames[_next++]);
        _node.Handle(frame);
        Replicate.Recycle(frame);
        _node.Flush();
        return _node.CommitIndex;
    }
}

using BenchmarkDotNet.Attributes;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Benchmarks;

/// <summary>
/// The log on disk: append <see cref="Batch"/> entries (64-byte messages), ask for a sync and wait for the
/// report, in a temporary folder. With fsync always that is one fsync per batch (group commit); with never,
/// a write system call. Reported per batch.
/// </summary>
[MemoryDiagnoser]
public class DurableLogBenchmarks
{
    private readonly SemaphoreSlim _synced = new(0);
    private byte[] _command = [];
    private string _folder = string.Empty;
    private DurableLog _log = null!;
    private LogEntry[] _batch = [];
    private long _next;
    private long _syncedThrough;

    [Params(FsyncPolicy.Never, FsyncPolicy.Always)]
    public FsyncPolicy Fsync { get; set; }

    [Params(1, 64)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Open()
    {
        _command = Fixtures.AppendCommand(64);
        _folder = Path.Combine(Path.GetTempPath(), $"understudy-bench-{Guid.NewGuid():N}");
        _log = DurableLog.Open(_folder, new DurableLogOptions
        {
            FsyncPolicy = Fsync,
            Synced = (through, _) =>
            {
                Volatile.Write(ref _syncedThrough, through);
                _synced.Release();
            },
        });
        _batch = new LogEntry[Batch];
        _next = 1;
    }

    [GlobalCleanup]
    public void Close()
    {
        _log.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Directory.Delete(_folder, recursive: true);
    }

    [Benchmark]
    public long AppendAndSync()
    {
        for (var i = 0; i < _batch.Length; i++)
        {
            _batch[i] = new LogEntry(_next++, 1, EntryKind.Command, 42, _next, _next, _command, 1_764_650_000_000 + _next);
        }

        _log.Append(_batch);
        var last = _next - 1;
        _log.RequestSync(last, 0);
        while (Volatile.Read(ref _syncedThrough) < last)
        {
            _synced.Wait();
        }

        return last;
    }
}

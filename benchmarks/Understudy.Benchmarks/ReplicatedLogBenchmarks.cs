using BenchmarkDotNet.Attributes;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>Copying a batch out of the in-memory log for a replication frame.</summary>
[MemoryDiagnoser]
public class ReplicatedLogBenchmarks
{
    private ReplicatedLog _log = null!;

    [Params(1, 64, 1024)]
    public int Count { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var command = Fixtures.AppendCommand(64);
        _log = new ReplicatedLog();
        for (var i = 1; i <= 100_000; i++)
        {
            _log.Append(new LogEntry(i, 1, EntryKind.Command, 42, i, i, command, 1_764_650_000_000 + i));
        }
    }

    [Benchmark]
    public int Slice() => _log.Slice(50_000, Count, 1024 * 1024).Length;
}

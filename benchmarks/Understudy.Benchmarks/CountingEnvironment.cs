using System.Runtime.CompilerServices;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>Counts what the node asks of the world; keeps nothing.</summary>
internal sealed class CountingEnvironment : IServerEnvironment
{
    public long Replies { get; private set; }

    public long FramesSent { get; private set; }

    public long EntriesSent { get; private set; }

    public long SyncGeneration { get; private set; }

    public void SendToMonitor<T>(in T message)
        where T : IMessage
    {
    }

    public void SendToServer<T>(NodeAddress to, in T message)
        where T : IMessage
    {
        if (typeof(T) == typeof(Replicate))
        {
            FramesSent++;
            EntriesSent += Unsafe.As<T, Replicate>(ref Unsafe.AsRef(in message)).Entries.Length;
        }
    }

    public void Reply(ClientRef client, in ClientResponse response) => Replies++;

    public void AppendLog(ReadOnlySpan<LogEntry> entries)
    {
    }

    public void TruncateLog(long fromIndex)
    {
    }

    public void SyncLog(long throughIndex, long generation) => SyncGeneration = generation;

    public void SaveEpoch(long epoch)
    {
    }

    public void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot)
    {
        // The benchmark measures the replication path; snapshots are never answered, so none is stored.
    }

    public void CompactLog(long belowIndex)
    {
    }

    // No snapshot is ever stored (see SaveSnapshot), so none is streamed or received.
    public long SnapshotLength(long index) => 0;

    public int ReadSnapshot(long index, long offset, Span<byte> destination) => 0;

    public long BeginSnapshotInstall(long index, long epoch, long totalLength) => 0;

    public void WriteSnapshotChunk(long index, long offset, ReadOnlySpan<byte> chunk)
    {
    }

    public ReadOnlyMemory<byte>? CompleteSnapshotInstall(long index) => null;

    public void ResetLog(long afterIndex, long epoch)
    {
    }

    public void Report(in ServerEvent e)
    {
    }
}

using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// A node's world without a disk: what it appends, truncates, compacts and saves is dropped, no snapshot is ever stored
/// (so none is streamed or received), and events go nowhere. What is left to a subclass is where messages and syncs go.
/// For nodes that only exercise the replication path: the promotion rehearsal and the replication benchmarks.
/// </summary>
internal abstract class DisklessEnvironment : IServerEnvironment
{
    public abstract void SendToMonitor<T>(in T message)
        where T : IMessage;

    public abstract void SendToServer<T>(NodeAddress to, in T message)
        where T : IMessage;

    public abstract void Reply(ClientRef client, in ClientResponse response);

    public abstract void SyncLog(long throughIndex, long generation);

    public void AppendLog(ReadOnlySpan<LogEntry> entries)
    {
    }

    public void TruncateLog(long fromIndex)
    {
    }

    public void SaveEpoch(long epoch)
    {
    }

    public void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot)
    {
        // Never answered with ServerNode.OnSnapshotSaved: the node goes on as if the write were still under way.
    }

    public void CompactLog(long belowIndex)
    {
    }

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

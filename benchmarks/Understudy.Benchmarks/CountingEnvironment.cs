using System.Runtime.CompilerServices;
using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>Counts what the node asks of the world; keeps nothing (no disk, no snapshots: <see cref="DisklessEnvironment"/>).</summary>
internal sealed class CountingEnvironment : DisklessEnvironment
{
    public long Replies { get; private set; }

    public long FramesSent { get; private set; }

    public long EntriesSent { get; private set; }

    public long SyncGeneration { get; private set; }

    public override void SendToMonitor<T>(in T message)
    {
    }

    public override void SendToServer<T>(NodeAddress to, in T message)
    {
        if (typeof(T) == typeof(Replicate))
        {
            FramesSent++;
            EntriesSent += Unsafe.As<T, Replicate>(ref Unsafe.AsRef(in message)).Entries.Length;
        }
    }

    public override void Reply(ClientRef client, in ClientResponse response) => Replies++;

    public override void SyncLog(long throughIndex, long generation) => SyncGeneration = generation;
}

using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// The log on disk, as the in-memory window sees it: entries older than the window are read back from here
/// on demand (a backup catching up, a reader far behind, an epoch lookup). The host implements it over the
/// segment files, the simulator over its simulated disk.
/// </summary>
/// <remarks>Called on the server's loop, only for entries already written (the window evicts only durable entries).</remarks>
public interface ILogArchive
{
    /// <summary>The oldest entry still on disk; compaction moves it forward.</summary>
    long FirstIndex { get; }

    /// <summary>
    /// Up to <paramref name="maxCount"/> consecutive entries from <paramref name="from"/> (at least one when
    /// <paramref name="from"/> is on disk), stopping once about <paramref name="maxBytes"/> are read.
    /// </summary>
    LogEntry[] Read(long from, int maxCount, int maxBytes);

    /// <summary>
    /// As <see cref="Read"/>, the entries in their wire encoding (<see cref="EncodedEntries"/>), when the archive holds
    /// them so and can hand them over without decoding (the segment files do); false when it cannot, and the caller reads
    /// them as entries. The run's bytes may be the archive's own buffer, good only until its next call: the caller sends
    /// them at once (<see cref="IServerEnvironment.SendToServer{T}"/> keeps nothing of a message once it returns) and
    /// keeps no reference.
    /// </summary>
    bool TryReadEncoded(long from, int maxCount, int maxBytes, out EncodedEntries run)
    {
        run = default;
        return false;
    }
}

/// <summary>A state snapshot as a server recovers it: the state after applying entries 1..<see cref="Index"/>.</summary>
/// <param name="Index">The last entry the snapshot includes.</param>
/// <param name="Epoch">That entry's epoch (what the log-matching check needs at the snapshot's edge).</param>
/// <param name="State">The serialized <see cref="StateMachines.ReplicatedState"/>.</param>
public readonly record struct ServerSnapshot(long Index, long Epoch, ReadOnlyMemory<byte> State)
{
    /// <summary>
    /// The entry the log on disk continues after: <see cref="Index"/>, unless the snapshot was installed from the primary
    /// with a log that resumes lower (the message store's state still reads its retained messages from the log). A
    /// restart from such a snapshot whose log does not yet reach <see cref="Index"/> is still backfilling.
    /// </summary>
    public long LogResumesAfter { get; init; } = Index;

    /// <summary>The epoch of the entry at <see cref="LogResumesAfter"/> (the log-matching check needs it there).</summary>
    public long LogResumesAfterEpoch { get; init; } = Epoch;
}

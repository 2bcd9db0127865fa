using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>A client connection, as the adapter numbers them; replies go back through it.</summary>
public readonly record struct ClientRef(long Id);

/// <summary>
/// What a <see cref="ServerNode"/> asks of the world. The real adapter sends over TCP and writes
/// segment files; the simulator queues messages and models a disk that loses unsynced writes.
/// Calls are made in order and must take effect in that order.
/// </summary>
public interface IServerEnvironment
{
    /// <summary>
    /// Sends to the monitor group (over the persistent heartbeat connections). The host broadcasts a
    /// <see cref="Heartbeat"/> to every monitor in its list (each tracks health, and a newly active one already knows
    /// who is alive) and routes every other message (in-sync changes, step-down results) to the active monitor: the
    /// one whose latest <see cref="HeartbeatAck"/> had <see cref="HeartbeatAck.FromActive"/> with the highest
    /// <see cref="HeartbeatAck.MonitorTerm"/> (its <see cref="HeartbeatAck.MonitorIncarnation"/> is
    /// <see cref="ServerNode.ActiveMonitorIncarnation"/>). A message that reaches a follower is refused or ignored, and retried
    /// by the server as any lost message is.
    /// </summary>
    void SendToMonitor<T>(in T message)
        where T : IMessage;

    /// <summary>
    /// Sends to another server. Keeps nothing of <paramref name="message"/>'s memory once it returns (it is encoded, or
    /// copied to wait for a connection): a catch-up frame's bytes are a buffer the next read reuses
    /// (<see cref="ILogArchive.TryReadEncoded"/>).
    /// </summary>
    void SendToServer<T>(NodeAddress to, in T message)
        where T : IMessage;

    /// <summary>Answers a client on the connection its request came from.</summary>
    void Reply(ClientRef client, in ClientResponse response);

    /// <summary>Appends entries to the log file (buffered; durable once a later sync completes).</summary>
    void AppendLog(ReadOnlySpan<LogEntry> entries);

    /// <summary>Removes entries from <paramref name="fromIndex"/> on; ordered with appends, durable by the next completed sync.</summary>
    void TruncateLog(long fromIndex);

    /// <summary>Makes the log durable through <paramref name="throughIndex"/>; answers with <see cref="ServerNode.OnLogSynced"/>.</summary>
    void SyncLog(long throughIndex, long generation);

    /// <summary>Records the highest epoch seen; durable when this returns.</summary>
    void SaveEpoch(long epoch);

    /// <summary>
    /// Stores a snapshot of the replicated state after applying 1..<paramref name="index"/> (entry <paramref name="index"/>
    /// has <paramref name="epoch"/>). Written in the background; answers with <see cref="ServerNode.OnSnapshotSaved"/>
    /// once it is durable. A snapshot lost in a crash only means a longer replay at the next start.
    /// </summary>
    void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot);

    /// <summary>
    /// Removes whole log segments holding only entries below <paramref name="belowIndex"/> (never above a durable
    /// snapshot, never above the commit index); ordered with appends and truncations.
    /// </summary>
    void CompactLog(long belowIndex);

    /// <summary>
    /// The length in bytes of the stored snapshot through <paramref name="index"/> as it is streamed to a backup (the
    /// host sends its snapshot file whole, header and all); 0 when that snapshot is no longer stored.
    /// </summary>
    long SnapshotLength(long index);

    /// <summary>
    /// Reads bytes <paramref name="offset"/>.. of the stored snapshot through <paramref name="index"/> into
    /// <paramref name="destination"/>; returns how many (fewer only at its end; 0 when it is no longer stored).
    /// </summary>
    int ReadSnapshot(long index, long offset, Span<byte> destination);

    /// <summary>
    /// Starts, or resumes, receiving the snapshot through <paramref name="index"/> of <paramref name="totalLength"/>
    /// bytes; returns how many of its bytes are already held from an earlier attempt (where the sender continues).
    /// A partial install of another snapshot is dropped.
    /// </summary>
    long BeginSnapshotInstall(long index, long epoch, long totalLength);

    /// <summary>Stores the next <paramref name="chunk"/> of the snapshot being received, at <paramref name="offset"/> (the end of what is held).</summary>
    void WriteSnapshotChunk(long index, long offset, ReadOnlySpan<byte> chunk);

    /// <summary>
    /// Checks the whole received snapshot (its own checksums), makes it durable, and returns the replicated state it
    /// holds (as <see cref="StateMachines.ReplicatedState.WriteSnapshot"/> wrote it). Null when it is damaged: it is
    /// discarded and the transfer starts again from byte 0. It becomes the newest stored snapshot with the
    /// <see cref="ResetLog"/> that follows, not before: until then a restart still has the old log and snapshots.
    /// </summary>
    ReadOnlyMemory<byte>? CompleteSnapshotInstall(long index);

    /// <summary>
    /// Installs the snapshot <see cref="CompleteSnapshotInstall"/> just returned: the whole log goes and continues at
    /// <paramref name="afterIndex"/> + 1, after an entry of <paramref name="epoch"/> (at or below the snapshot's index).
    /// Ordered with appends and truncations, and atomic for a crash: a restart finds either the old log and snapshots or
    /// the new snapshot with the log from <paramref name="afterIndex"/> + 1 on (<see cref="ServerSnapshot.LogResumesAfter"/>),
    /// and a sync reported for anything appended after it means it is on disk.
    /// </summary>
    void ResetLog(long afterIndex, long epoch);

    /// <summary>Something worth logging or counting happened.</summary>
    void Report(in ServerEvent e);
}

/// <summary>What a server reports about itself.</summary>
public enum ServerEventKind
{
    BecamePrimary,
    SteppedDown,
    FollowingPrimary,
    LeaseLapsed,
    LeaseRenewed,
    Truncated,
    InSyncChangeRequested,
    InSyncChangeAnswered,
    HandoverStarted,
    HandoverReady,
    HandoverAbandoned,
    StaleFrameRejected,
    LogMismatch,

    /// <summary>A backup needs entries the primary has compacted away: only a snapshot can catch it up (not sent yet).</summary>
    NeedsSnapshot,

    /// <summary>A snapshot of the replicated state was taken (Index) or stored and the log compacted.</summary>
    SnapshotTaken,

    /// <summary>The primary began streaming its snapshot (Index) to a backup (Peer) that needs compacted entries.</summary>
    SnapshotTransferStarted,

    /// <summary>A backup refused a snapshot chunk (lost before it, out of order, damaged) or a whole damaged snapshot; the transfer resumes.</summary>
    SnapshotChunkRefused,

    /// <summary>A backup installed a snapshot (Index) from its primary; its log continues after it.</summary>
    SnapshotInstalled,

    /// <summary>A safety rule would have broken here; the action was refused. Never expected.</summary>
    SafetyViolation,
}

/// <summary>An event from a server, with the epoch it happened in.</summary>
public readonly record struct ServerEvent(ServerEventKind Kind, long Epoch, NodeAddress Peer, long Index, string Detail);

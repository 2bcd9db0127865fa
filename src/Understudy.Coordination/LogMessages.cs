using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Coordination;

/// <summary>
/// Every log line of Understudy.Coordination. EventIds 7000-7999 belong to this project: 7000-7099 the Raft
/// coordinator, 7100-7199 the etcd coordinator.
/// </summary>
internal static partial class LogMessages
{
    #region Raft

    [LoggerMessage(EventId = 7000, Level = LogLevel.Information,
        Message = "monitor group: member {Self} started (Raft {RaftEndPoint}, {Members} members, data '{Directory}', election timeout {LowerMs}-{UpperMs} ms, lease {LeaseMs} ms)")]
    public static partial void RaftStarted(this ILogger logger, NodeAddress self, System.Net.EndPoint raftEndPoint, int members, string directory, long lowerMs, long upperMs, long leaseMs);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Warning,
        Message = "monitor group: no quorum (reached {Reached} of {Members})")]
    public static partial void RaftNoQuorum(this ILogger logger, int reached, int members);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Information,
        Message = "monitor group: quorum regained (reached {Reached} of {Members})")]
    public static partial void RaftQuorumRegained(this ILogger logger, int reached, int members);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Information,
        Message = "monitor group: term {Term}, active monitor {Active}, this monitor active: {IsActive}")]
    public static partial void RaftLeadershipChanged(this ILogger logger, long term, NodeAddress active, bool isActive);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Information,
        Message = "monitor group: committed configuration {Config} at log index {Index}")]
    public static partial void RaftConfigApplied(this ILogger logger, ClusterConfig config, long index);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Information,
        Message = "monitor group: refused a compare-and-set at log index {Index}: expected version {Expected}, stored {Current}")]
    public static partial void RaftConfigRefused(this ILogger logger, long index, long expected, long current);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Error,
        Message = "monitor group: skipped the unreadable log entry at index {Index} ({Problem}); every member skips it alike")]
    public static partial void RaftEntryUnreadable(this ILogger logger, long index, string problem);

    [LoggerMessage(EventId = 7007, Level = LogLevel.Information,
        Message = "monitor group: restored configuration {Config} from snapshot '{Path}'")]
    public static partial void RaftSnapshotRestored(this ILogger logger, ClusterConfig config, string path);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Error,
        Message = "monitor group: the {Handler} handler threw; the coordinator carries on")]
    public static partial void RaftHandlerFailed(this ILogger logger, Exception exception, string handler);

    [LoggerMessage(EventId = 7009, Level = LogLevel.Warning,
        Message = "monitor group: the background loop failed; leadership is no longer confirmed")]
    public static partial void RaftLoopFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Information,
        Message = "monitor group: member {Self} stands by (votes, never stands for election) while {Leader} leads (-: no leader heard since it started); another member is next in line")]
    public static partial void RaftStandingBy(this ILogger logger, NodeAddress self, NodeAddress leader);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Information,
        Message = "monitor group: member {Self} may stand for election (place {Position} in line; no leader heard for {SilenceMs} ms)")]
    public static partial void RaftMayStand(this ILogger logger, NodeAddress self, int position, long silenceMs);

    // 7050-7059: a follower's catch-up through a snapshot (Raft/SnapshotRefusalWatch.cs).
    [LoggerMessage(EventId = 7050, Level = LogLevel.Warning,
        Message = "monitor group: member {Member} refused the snapshot at log index {Index} (it holds it already: its answer to an earlier install was lost); writing a newer snapshot so that its catch-up goes on")]
    public static partial void RaftSnapshotRefused(this ILogger logger, System.Net.EndPoint member, long index);

    [LoggerMessage(EventId = 7051, Level = LogLevel.Warning,
        Message = "monitor group: could not write the newer snapshot for a follower's catch-up; the next refusal tries again")]
    public static partial void RaftSnapshotAdvanceFailed(this ILogger logger, Exception exception);

    #endregion

    #region etcd

    // etcd (7100-7199): the etcd coordinator (Etcd/EtcdCoordinator.cs).
    [LoggerMessage(EventId = 7100, Level = LogLevel.Warning,
        Message = "etcd coordinator: cannot reach etcd at {Endpoints}: {Reason}")]
    public static partial void EtcdUnreachable(this ILogger logger, string endpoints, string reason);

    [LoggerMessage(EventId = 7101, Level = LogLevel.Information,
        Message = "etcd coordinator: reached etcd at {Endpoints}")]
    public static partial void EtcdReachable(this ILogger logger, string endpoints);

    [LoggerMessage(EventId = 7102, Level = LogLevel.Information,
        Message = "etcd coordinator: {Self} is the active monitor in term {Term} (leader key {Key}, lease {LeaseId:x})")]
    public static partial void EtcdBecameActive(this ILogger logger, NodeAddress self, long term, string key, long leaseId);

    [LoggerMessage(EventId = 7103, Level = LogLevel.Warning,
        Message = "etcd coordinator: {Self} is no longer the active monitor (term {Term}); active now: {Active}")]
    public static partial void EtcdSteppedDown(this ILogger logger, NodeAddress self, long term, NodeAddress active);

    [LoggerMessage(EventId = 7104, Level = LogLevel.Warning,
        Message = "etcd coordinator: lease {LeaseId:x} expired before it was renewed; this monitor registers again with a new lease")]
    public static partial void EtcdLeaseLost(this ILogger logger, long leaseId);

    [LoggerMessage(EventId = 7105, Level = LogLevel.Debug,
        Message = "etcd coordinator: configuration write refused: expected version {Expected}, stored {Current}")]
    public static partial void EtcdConfigCasRefused(this ILogger logger, long expected, long current);

    [LoggerMessage(EventId = 7106, Level = LogLevel.Warning,
        Message = "etcd coordinator: configuration write refused by etcd because {Self} no longer holds the leader key (active: {Active})")]
    public static partial void EtcdConfigWriteDeposed(this ILogger logger, NodeAddress self, NodeAddress active);

    [LoggerMessage(EventId = 7107, Level = LogLevel.Information,
        Message = "etcd coordinator: stored configuration {Config} at revision {Revision}")]
    public static partial void EtcdConfigStored(this ILogger logger, ClusterConfig config, long revision);

    [LoggerMessage(EventId = 7108, Level = LogLevel.Error,
        Message = "etcd coordinator: a {Event} handler threw; the coordinator carries on")]
    public static partial void EtcdHandlerFailed(this ILogger logger, Exception exception, string @event);

    [LoggerMessage(EventId = 7109, Level = LogLevel.Error,
        Message = "etcd coordinator: {Problem}")]
    public static partial void EtcdConfigDamaged(this ILogger logger, string problem);

    [LoggerMessage(EventId = 7110, Level = LogLevel.Error,
        Message = "etcd coordinator: a round of renewing, reading and campaigning failed unexpectedly; this monitor vouches for nothing until one succeeds")]
    public static partial void EtcdStepFailed(this ILogger logger, Exception exception);

    #endregion
}

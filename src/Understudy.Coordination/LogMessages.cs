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

    #endregion
}

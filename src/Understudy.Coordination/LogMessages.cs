using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Coordination;

/// <summary>Every log line of Understudy.Coordination. Event ids 5000-5999 belong to this project.</summary>
internal static partial class LogMessages
{
    #region etcd

    // etcd (5500-5599): the etcd coordinator (Etcd/EtcdCoordinator.cs).
    [LoggerMessage(EventId = 5500, Level = LogLevel.Warning,
        Message = "etcd coordinator: cannot reach etcd at {Endpoints}: {Reason}")]
    public static partial void EtcdUnreachable(this ILogger logger, string endpoints, string reason);

    [LoggerMessage(EventId = 5501, Level = LogLevel.Information,
        Message = "etcd coordinator: reached etcd at {Endpoints}")]
    public static partial void EtcdReachable(this ILogger logger, string endpoints);

    [LoggerMessage(EventId = 5502, Level = LogLevel.Information,
        Message = "etcd coordinator: {Self} is the active monitor in term {Term} (leader key {Key}, lease {LeaseId:x})")]
    public static partial void EtcdBecameActive(this ILogger logger, NodeAddress self, long term, string key, long leaseId);

    [LoggerMessage(EventId = 5503, Level = LogLevel.Warning,
        Message = "etcd coordinator: {Self} is no longer the active monitor (term {Term}); active now: {Active}")]
    public static partial void EtcdSteppedDown(this ILogger logger, NodeAddress self, long term, NodeAddress active);

    [LoggerMessage(EventId = 5504, Level = LogLevel.Warning,
        Message = "etcd coordinator: lease {LeaseId:x} expired before it was renewed; this monitor registers again with a new lease")]
    public static partial void EtcdLeaseLost(this ILogger logger, long leaseId);

    [LoggerMessage(EventId = 5505, Level = LogLevel.Debug,
        Message = "etcd coordinator: configuration write refused: expected version {Expected}, stored {Current}")]
    public static partial void EtcdConfigCasRefused(this ILogger logger, long expected, long current);

    [LoggerMessage(EventId = 5506, Level = LogLevel.Warning,
        Message = "etcd coordinator: configuration write refused by etcd because {Self} no longer holds the leader key (active: {Active})")]
    public static partial void EtcdConfigWriteDeposed(this ILogger logger, NodeAddress self, NodeAddress active);

    [LoggerMessage(EventId = 5507, Level = LogLevel.Information,
        Message = "etcd coordinator: stored configuration {Config} at revision {Revision}")]
    public static partial void EtcdConfigStored(this ILogger logger, ClusterConfig config, long revision);

    [LoggerMessage(EventId = 5508, Level = LogLevel.Error,
        Message = "etcd coordinator: a {Event} handler threw; the coordinator carries on")]
    public static partial void EtcdHandlerFailed(this ILogger logger, Exception exception, string @event);

    [LoggerMessage(EventId = 5509, Level = LogLevel.Error,
        Message = "etcd coordinator: {Problem}")]
    public static partial void EtcdConfigDamaged(this ILogger logger, string problem);

    [LoggerMessage(EventId = 5510, Level = LogLevel.Error,
        Message = "etcd coordinator: a round of renewing, reading and campaigning failed unexpectedly; this monitor vouches for nothing until one succeeds")]
    public static partial void EtcdStepFailed(this ILogger logger, Exception exception);

    #endregion
}

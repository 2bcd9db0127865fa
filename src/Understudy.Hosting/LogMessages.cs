using Microsoft.Extensions.Logging;

namespace Understudy.Hosting;

/// <summary>Every log line the hosts write. EventIds 4000-4999 and 2750-2799 belong to Understudy.Hosting.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(4000, LogLevel.Information, "server {Address} starting: {Entries} entries recovered, epoch {Epoch}, data in {Data}, fsync={Fsync}")]
    public static partial void ServerStarting(ILogger logger, string address, int entries, long epoch, string data, string fsync);

    [LoggerMessage(2600, LogLevel.Warning, "snapshot {Index} received from the primary was refused ({Reason}); the transfer starts again")]
    public static partial void SnapshotInstallRefused(ILogger logger, long index, string reason);

    [LoggerMessage(2601, LogLevel.Information, "snapshot {Index} installed from the primary; the log continues after {AfterIndex}")]
    public static partial void SnapshotInstalledFromPrimary(ILogger logger, long index, long afterIndex);

    [LoggerMessage(2602, LogLevel.Warning, "snapshot {Index} cannot be sent to a backup ({Reason})")]
    public static partial void SnapshotUnreadable(ILogger logger, long index, string reason);

    [LoggerMessage(2750, LogLevel.Critical, "the state machine {Machine} threw applying entry {Index}; stopping this server so its state cannot diverge from the other replicas'")]
    public static partial void ApplyFailed(ILogger logger, long index, string machine, Exception exception);

    [LoggerMessage(2751, LogLevel.Warning, "applying entry {Index} took {Milliseconds:0.#} ms (threshold {Threshold:0.#} ms; {Count} slow since the last warning): Apply holds up the node's loop, heartbeats and replication; keep it fast and do slow work outside the state machine")]
    public static partial void SlowApply(ILogger logger, long index, double milliseconds, double threshold, int count);

    [LoggerMessage(4031, LogLevel.Warning, "snapshot through {Index} could not be saved ({Reason}); the log is not compacted and no further snapshot is taken until restart")]
    public static partial void SnapshotFailed(ILogger logger, long index, string reason);

    [LoggerMessage(4001, LogLevel.Information, "connected to the monitor at {Monitor}")]
    public static partial void MonitorConnected(ILogger logger, string monitor);

    [LoggerMessage(4002, LogLevel.Warning, "waiting for the monitor at {Monitor} ({Reason}); serving only once it grants a lease")]
    public static partial void MonitorUnreachable(ILogger logger, string monitor, string reason);

    [LoggerMessage(4003, LogLevel.Information, "{Kind} (epoch {Epoch}) {Peer} {Detail}")]
    public static partial void ServerEvent(ILogger logger, string kind, long epoch, string peer, string detail);

    [LoggerMessage(4040, LogLevel.Information, "promotion to primary of epoch {Epoch} received from the monitor (as it arrived, before the loop takes it)")]
    public static partial void PromotionReceived(ILogger logger, long epoch);

    [LoggerMessage(4041, LogLevel.Information, "rehearsed a promotion in {Ms:0} ms ({Writes} writes committed, {Reads} reads answered): the primary's code is compiled before it is needed")]
    public static partial void PromotionRehearsed(ILogger logger, double ms, int writes, int reads);

    [LoggerMessage(4042, LogLevel.Warning, "the promotion rehearsal failed ({Reason}); nothing else is affected, but a first promotion compiles the primary's code while clients wait")]
    public static partial void PromotionRehearsalFailed(ILogger logger, string reason);

    [LoggerMessage(4004, LogLevel.Debug, "{Kind} (epoch {Epoch}) {Peer} {Detail}")]
    public static partial void ServerEventDebug(ILogger logger, string kind, long epoch, string peer, string detail);

    [LoggerMessage(4005, LogLevel.Critical, "SAFETY: epoch {Epoch}: {Detail}")]
    public static partial void SafetyViolation(ILogger logger, long epoch, string detail);

    [LoggerMessage(4006, LogLevel.Error, "error while handling input; carrying on")]
    public static partial void LoopError(ILogger logger, Exception exception);

    [LoggerMessage(4007, LogLevel.Warning, "ignored {Type} from {Remote} ({Role}): not a message this process takes from that peer")]
    public static partial void UnexpectedMessage(ILogger logger, string type, string remote, string role);

    [LoggerMessage(4010, LogLevel.Information, "monitor starting: heartbeats on {Heartbeats}, clients on {Clients}, configuration {Config}")]
    public static partial void MonitorStarting(ILogger logger, string heartbeats, string clients, string config);

    [LoggerMessage(4011, LogLevel.Information, "{Kind} {Member} {Detail}")]
    public static partial void MonitorEvent(ILogger logger, string kind, string member, string detail);

    [LoggerMessage(4012, LogLevel.Warning, "{Kind} {Member} {Detail}")]
    public static partial void MonitorWarning(ILogger logger, string kind, string member, string detail);

    [LoggerMessage(4013, LogLevel.Error, "could not store the configuration: {Reason}")]
    public static partial void ConfigStoreFailed(ILogger logger, string reason);

    [LoggerMessage(4015, LogLevel.Information, "heartbeat connection from {Member} ended ({Reason}); the active monitor probes its port")]
    public static partial void ServerConnectionLost(ILogger logger, string member, string reason);

    [LoggerMessage(4016, LogLevel.Information, "probe of {Member}: {Outcome} in {Ms:0.0} ms")]
    public static partial void ProbeAnswered(ILogger logger, string member, string outcome, double ms);

    [LoggerMessage(4014, LogLevel.Information, "HTTP on http://{Host}:{Port}")]
    public static partial void HttpListening(ILogger logger, string host, int port);

    [LoggerMessage(4017, LogLevel.Information, "monitor group: {Coordinator} coordinator, {Count} member(s): {Members}")]
    public static partial void MonitorGroup(ILogger logger, string coordinator, int count, string members);

    [LoggerMessage(4018, LogLevel.Warning, "this monitor does not reach a quorum of its group (unreachable: {Unreachable}); it grants no lease and /health answers 503 until it does")]
    public static partial void QuorumLost(ILogger logger, string unreachable);

    [LoggerMessage(4019, LogLevel.Information, "this monitor reaches a quorum of its group: term {Term}, active monitor {Active}")]
    public static partial void QuorumReached(ILogger logger, long term, string active);

    [LoggerMessage(4020, LogLevel.Information, "monitor group term {Term}: this monitor is {Role}; the active monitor is {Active}")]
    public static partial void LeadershipChanged(ILogger logger, long term, string role, string active);

    [LoggerMessage(4021, LogLevel.Information, "proposal {Config} not committed: {Reason}")]
    public static partial void ProposalRefused(ILogger logger, string config, string reason);

    [LoggerMessage(4022, LogLevel.Debug, "/health answers 503: {Reason}")]
    public static partial void HealthNoQuorum(ILogger logger, string reason);

    [LoggerMessage(4030, LogLevel.Information, "the active monitor is {Monitor} (term {Term}); in-sync changes and step-down results go there")]
    public static partial void ActiveMonitor(ILogger logger, string monitor, long term);

    [LoggerMessage(4032, LogLevel.Warning, "became active in term {Term} but could not load the committed configuration ({Reason}); staying a follower and trying again")]
    public static partial void TermLoadFailed(ILogger logger, long term, string reason);
}

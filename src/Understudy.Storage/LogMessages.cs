using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>Every log line of Understudy.Storage. Event ids 3000-3999 belong to this project.</summary>
internal static partial class LogMessages
{
    // 3000-3099: the durable log.
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information,
        Message = "Recovered {Entries} log entries (log spans {FirstIndex}..{LastIndex}, {Segments} segment(s), {SegmentsRead} read at start-up) in '{Directory}', saved epoch {Epoch}, in {ElapsedMs} ms")]
    public static partial void LogRecovered(this ILogger logger, long entries, long firstIndex, long lastIndex, int segments, int segmentsRead, string directory, long epoch, long elapsedMs);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning,
        Message = "Dropped a torn tail of {Bytes} bytes at offset {Offset} of '{Segment}' ({Problem}); the log now ends at index {LastIndex}. This is what an interrupted write leaves behind: those entries were never synced, so never acknowledged")]
    public static partial void TornTailDropped(this ILogger logger, long bytes, long offset, string segment, string problem, long lastIndex);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Critical,
        Message = "The log in '{Directory}' stopped: {Reason}")]
    public static partial void LogFaulted(this ILogger logger, Exception exception, string directory, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error,
        Message = "The {Callback} callback of the log threw; the log carries on")]
    public static partial void CallbackFailed(this ILogger logger, Exception exception, string callback);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug,
        Message = "Started segment '{Segment}'")]
    public static partial void SegmentCreated(this ILogger logger, string segment);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information,
        Message = "Truncated the log from index {FromIndex} on ({DeletedSegments} segment file(s) deleted)")]
    public static partial void LogTruncated(this ILogger logger, long fromIndex, int deletedSegments);

    // Information: once per epoch, and how long the save held its caller is a stage of every failover.
    [LoggerMessage(EventId = 3006, Level = LogLevel.Information,
        Message = "Saved epoch {Epoch} in {Milliseconds:0.0} ms")]
    public static partial void EpochSaved(this ILogger logger, long epoch, double milliseconds);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Information,
        Message = "Removed '{Path}', left by a crash before it was renamed into place")]
    public static partial void StaleTempRemoved(this ILogger logger, string path);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Information,
        Message = "Removed {Segments} old segment file(s) holding only entries below {BelowIndex}; the log now starts at index {FirstIndex}")]
    public static partial void SegmentsRemoved(this ILogger logger, int segments, long belowIndex, long firstIndex);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Information,
        Message = "Removed the whole log ({Segments} segment file(s)); it continues at index {NextIndex}")]
    public static partial void LogReset(this ILogger logger, long nextIndex, int segments);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning,
        Message = "Finished installing snapshot {SnapshotIndex} at open: a crash came after its log reset took effect and before the snapshot was renamed into place; removed {Segments} older segment file(s), the log starts at index {NextIndex}")]
    public static partial void InstallFinishedAtOpen(this ILogger logger, long snapshotIndex, int segments, long nextIndex);

    // 3200-3299: snapshots.
    [LoggerMessage(EventId = 3200, Level = LogLevel.Information,
        Message = "Saved snapshot {Index} (epoch {Epoch}, {Bytes} bytes) to '{Path}'")]
    public static partial void SnapshotSaved(this ILogger logger, long index, long epoch, long bytes, string path);

    [LoggerMessage(EventId = 3201, Level = LogLevel.Warning,
        Message = "Refused snapshot '{Path}': {Reason}; trying an older one")]
    public static partial void SnapshotRefused(this ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3202, Level = LogLevel.Information,
        Message = "Loaded snapshot {Index} (epoch {Epoch}, {Bytes} bytes) from '{Path}'")]
    public static partial void SnapshotLoaded(this ILogger logger, long index, long epoch, long bytes, string path);

    [LoggerMessage(EventId = 3203, Level = LogLevel.Debug,
        Message = "Deleted old snapshot '{Path}' (the newest {Kept} are kept)")]
    public static partial void SnapshotPruned(this ILogger logger, string path, int kept);

    [LoggerMessage(EventId = 3204, Level = LogLevel.Information,
        Message = "Installing snapshot {Index} (epoch {Epoch}, {Total} bytes): resuming at byte {Received}")]
    public static partial void SnapshotInstallStarted(this ILogger logger, long index, long epoch, long total, long received);

    [LoggerMessage(EventId = 3205, Level = LogLevel.Information,
        Message = "Installed snapshot {Index} (epoch {Epoch}, {Bytes} bytes) at '{Path}'")]
    public static partial void SnapshotInstalled(this ILogger logger, long index, long epoch, long bytes, string path);

    [LoggerMessage(EventId = 3206, Level = LogLevel.Information,
        Message = "Removed '{Path}': {Reason}")]
    public static partial void SnapshotLeftoverRemoved(this ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3207, Level = LogLevel.Information,
        Message = "Removed '{Path}': an unfinished install superseded by snapshot {Index}")]
    public static partial void SnapshotInstallSuperseded(this ILogger logger, string path, long index);

    // 3100-3199: the configuration store.
    [LoggerMessage(EventId = 3100, Level = LogLevel.Information,
        Message = "Loaded cluster configuration from '{Path}': {Config}")]
    public static partial void ConfigLoaded(this ILogger logger, string path, ClusterConfig config);

    [LoggerMessage(EventId = 3101, Level = LogLevel.Information,
        Message = "No configuration in '{Path}' yet: starting from epoch 0")]
    public static partial void ConfigMissing(this ILogger logger, string path);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Debug,
        Message = "Stored cluster configuration: {Config}")]
    public static partial void ConfigStored(this ILogger logger, ClusterConfig config);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Information,
        Message = "Compare-and-set refused: expected version {Expected}, stored version is {Actual}")]
    public static partial void ConfigCasRefused(this ILogger logger, long expected, long actual);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Critical,
        Message = "The configuration store in '{Directory}' stopped: {Reason}")]
    public static partial void ConfigStoreFaulted(this ILogger logger, Exception exception, string directory, string reason);
}

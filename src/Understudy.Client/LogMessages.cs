using Microsoft.Extensions.Logging;

namespace Understudy.Client;

/// <summary>The client's log lines. EventIds 5000-5999 belong to Understudy.Client.</summary>
internal static partial class ClientLog
{
    [LoggerMessage(5000, LogLevel.Information, "primary is {Primary} (epoch {Epoch}, from {Source})")]
    public static partial void PrimaryChanged(ILogger logger, string primary, long epoch, string source);

    [LoggerMessage(5001, LogLevel.Warning, "waiting for the monitor at {Monitor} ({Reason})")]
    public static partial void MonitorUnreachable(ILogger logger, string monitor, string reason);

    [LoggerMessage(5002, LogLevel.Error, "client error; carrying on")]
    public static partial void LoopError(ILogger logger, Exception exception);

    [LoggerMessage(5004, LogLevel.Warning, "the primary has answered only 'unavailable' for {Seconds} s: leaving monitor {Monitor}, which may be cut off from its group, for the next one")]
    public static partial void MonitorSuspected(ILogger logger, string monitor, double seconds);

    [LoggerMessage(5005, LogLevel.Information, "monitor {Follower} is a follower: subscribing at the active monitor {Active} instead")]
    public static partial void MovedToActiveMonitor(ILogger logger, string follower, string active);

    [LoggerMessage(5003, LogLevel.Warning, "closing the connections (monitor {Monitor}) took more than {Seconds} s; left to finish in the background")]
    public static partial void DisposeSlow(ILogger logger, string monitor, double seconds);
}

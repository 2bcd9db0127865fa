using Microsoft.Extensions.Logging;

namespace Understudy.Cli;

/// <summary>The CLI's own log lines. EventIds 6000-6999 belong to Understudy.Cli.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(6001, LogLevel.Information, "monitor ready: heartbeats on {Heartbeats}, clients on {Clients}{Http}")]
    public static partial void MonitorReady(ILogger logger, string heartbeats, string clients, string http);

    [LoggerMessage(6002, LogLevel.Critical, "stopping: {Reason}")]
    public static partial void Stopping(ILogger logger, string reason);
}

using Microsoft.Extensions.Logging;

namespace Understudy.Server;

/// <summary>Every log line the server library writes. EventIds 8000-8099 belong to Understudy.Server.</summary>
internal static partial class LogMessages
{
    [LoggerMessage(8000, LogLevel.Information, "server {Address} ready: clients and members on {Listen}, monitor {Monitor}{Http}")]
    public static partial void ServerReady(ILogger logger, string address, string listen, string monitor, string http);

    [LoggerMessage(8001, LogLevel.Critical, "server {Address} stopping: {Reason}")]
    public static partial void Stopping(ILogger logger, string address, string reason);
}

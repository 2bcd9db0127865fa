using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace Understudy.Cli.Infrastructure;

/// <summary>One compact console format for every process: time, level, source, message, one line each.</summary>
internal static class ConsoleLogging
{
    public static ILoggerFactory Create(LogLevel level, string? prefix = null) =>
        LoggerFactory.Create(builder => Configure(builder, level, prefix));

    public static void Configure(ILoggingBuilder builder, LogLevel level, string? prefix = null)
    {
        builder.ClearProviders();
        builder.SetMinimumLevel(level);
        builder.AddFilter("Microsoft", LogLevel.Warning);
        builder.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = prefix is null ? "HH:mm:ss.fff " : $"HH:mm:ss.fff [{prefix}] ";
            o.IncludeScopes = false;
            o.ColorBehavior = Console.IsOutputRedirected ? LoggerColorBehavior.Disabled : LoggerColorBehavior.Default;
        });
    }

    public static LogLevel Parse(string? text) => text?.ToLowerInvariant() switch
    {
        null or "" or "info" or "information" => LogLevel.Information,
        "debug" => LogLevel.Debug,
        "trace" => LogLevel.Trace,
        "warn" or "warning" => LogLevel.Warning,
        "error" => LogLevel.Error,
        _ => throw new UsageException($"--log-level '{text}' is not one of trace, debug, info, warning, error"),
    };
}

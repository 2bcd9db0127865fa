using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Understudy.Transport;

namespace Understudy.Cli.Infrastructure;

/// <summary>
/// Runs a long-lived process (server, monitor) until Ctrl+C or SIGTERM, turning start-up failures (a port
/// in use, a locked data folder, a bad setting) into one readable line and exit code 1.
/// </summary>
internal static class HostRunner
{
    public static async Task<int> RunAsync(LogLevel level, string name, Func<ILoggerFactory, CancellationToken, Task<int>> run, CancellationToken cancellationToken)
    {
        using var loggers = ConsoleLogging.Create(level);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });
        try
        {
            return await run(loggers, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e) when (e is TransportException or InvalidOperationException or ArgumentException or UsageException or IOException or UnauthorizedAccessException or Understudy.Storage.StorageException)
        {
            Console.Error.WriteLine($"understudy {name}: {e.Message}");
            return 1;
        }
    }
}

/// <summary>Passes Kestrel's log lines to the process's own logger factory.</summary>
internal sealed class ForwardingLoggerProvider(ILoggerFactory factory) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => factory.CreateLogger(categoryName);

    public void Dispose()
    {
    }
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Understudy.Transport;

namespace Understudy.Cli.Infrastructure;

/// <summary>
/// Runs a long-lived process (server, monitor) under the .NET generic host: console logging, Ctrl+C and
/// SIGTERM as a graceful stop (the log is drained, connections closed), and start-up failures (a port in
/// use, a locked data folder, a bad setting) turned into one readable line and exit code 1.
/// </summary>
internal static class HostRunner
{
    public static async Task<int> RunAsync(LogLevel level, string name, Func<ILoggerFactory, CancellationToken, Task<int>> run, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ApplicationName = "understudy " + name });
        ConsoleLogging.Configure(builder.Logging, level);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        var service = new ProcessService(run);
        builder.Services.AddSingleton<IHostedService>(service);
        using var host = builder.Build();
        service.Bind(host.Services.GetRequiredService<ILoggerFactory>(), host.Services.GetRequiredService<IHostApplicationLifetime>());
        try
        {
            await host.RunAsync(cancellationToken);
            return service.ExitCode;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e) when (IsStartupProblem(e))
        {
            Console.Error.WriteLine($"understudy {name}: {e.Message}");
            return 1;
        }
    }

    /// <summary>
    /// Runs hosted services <paramref name="services"/> registers (a library's, such as <c>AddUnderstudyServer</c>) under the
    /// same console logging and signals; <paramref name="exitCode"/> reads the exit code from them once the host has stopped.
    /// A start-up failure is one line on stderr and exit code 1.
    /// </summary>
    public static async Task<int> RunServicesAsync(LogLevel level, string name, Action<IServiceCollection> services, Func<IServiceProvider, int> exitCode, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ApplicationName = "understudy " + name });
        ConsoleLogging.Configure(builder.Logging, level);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
        services(builder.Services);
        using var host = builder.Build();
        try
        {
            await host.RunAsync(cancellationToken);
            return exitCode(host.Services);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception e) when (IsStartupProblem(e))
        {
            // A readable line, not a stack trace: what is wrong and how to fix it.
            Console.Error.WriteLine($"understudy: {e.Message}");
            return 1;
        }
    }

    private static bool IsStartupProblem(Exception e) =>
        e is TransportException or InvalidOperationException or ArgumentException or UsageException or IOException or UnauthorizedAccessException or Storage.StorageException;

    /// <summary>The process's work as a hosted service: started by the host, stopped by it on a signal.</summary>
    private sealed class ProcessService(Func<ILoggerFactory, CancellationToken, Task<int>> run) : BackgroundService
    {
        private ILoggerFactory _loggers = null!;
        private IHostApplicationLifetime _lifetime = null!;

        public int ExitCode { get; private set; }

        public void Bind(ILoggerFactory loggers, IHostApplicationLifetime lifetime)
        {
            _loggers = loggers;
            _lifetime = lifetime;
        }

        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            try
            {
                ExitCode = await run(_loggers, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                ExitCode = 0;
            }
            catch (Exception e) when (IsStartupProblem(e))
            {
                // A readable line, not a stack trace: what is wrong and how to fix it.
                Console.Error.WriteLine($"understudy: {e.Message}");
                ExitCode = 1;
            }
            finally
            {
                // The work ended on its own (a fatal disk error, say): end the process too.
                _lifetime.StopApplication();
            }
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

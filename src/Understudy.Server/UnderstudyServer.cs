using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Understudy.Hosting;
using Understudy.Protocol;

namespace Understudy.Server;

/// <summary>What a running server is, at one instant: read from its node on the node's loop, so the values agree.</summary>
/// <param name="Role">Primary or backup (a server starts as a backup; the monitor promotes one).</param>
/// <param name="Epoch">The highest epoch this server has entered.</param>
/// <param name="Primary">The primary of that epoch as this server knows it (itself when primary).</param>
/// <param name="IsServing">A primary whose epoch has committed: it answers commands and queries.</param>
/// <param name="CommitIndex">The last log entry known committed.</param>
public sealed record UnderstudyServerStatus(ServerRole Role, long Epoch, NodeAddress Primary, bool IsServing, long CommitIndex)
{
    /// <summary>Before the server has started.</summary>
    public static readonly UnderstudyServerStatus NotStarted = new(ServerRole.Backup, 0, NodeAddress.None, false, 0);

    public bool IsPrimary => Role == ServerRole.Primary;
}

/// <summary>
/// One Understudy server as a hosted service of the .NET generic host: <see cref="StartAsync"/> opens the log, binds the
/// port, connects to the monitors (and serves HTTP when <see cref="ServerHostOptions.HttpPort"/> is set);
/// <see cref="StopAsync"/> closes them. Registered by <c>AddUnderstudyServer</c>; resolve it to see the running server.
/// When the server must stop on its own (its disk failed, its state machine threw in Apply) it asks the application to
/// stop, and <see cref="StopReason"/> says why.
/// </summary>
public sealed class UnderstudyServer : IHostedService, IAsyncDisposable
{
    /// <summary>How often <see cref="Status"/> is refreshed from the node while the server runs.</summary>
    public static readonly TimeSpan StatusInterval = TimeSpan.FromMilliseconds(50);

    private readonly ILoggerFactory _loggers;
    private readonly IHostApplicationLifetime? _lifetime;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private ServerHost? _host;
    private WebApplication? _http;
    private Task _watching = Task.CompletedTask;
    private UnderstudyServerStatus _status = UnderstudyServerStatus.NotStarted;
    private string? _stopReason;
    private int _stopped;
    private int _disposed;

    /// <param name="options">Where the server listens, its monitors, its data folder and its state machine.</param>
    /// <param name="loggers">Where its log lines go.</param>
    /// <param name="lifetime">Asked to stop the application when the server must stop on its own; null to leave it running.</param>
    public UnderstudyServer(ServerHostOptions options, ILoggerFactory loggers, IHostApplicationLifetime? lifetime = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        Options = options;
        _loggers = loggers;
        _lifetime = lifetime;
        _logger = loggers.CreateLogger("Understudy.Server");
    }

    public ServerHostOptions Options { get; }

    /// <summary>This server's identity: the address clients and the other members reach it at.</summary>
    public NodeAddress Address => Options.Identity;

    /// <summary>Completes once the server is serving its port (faults with the reason if it could not start).</summary>
    public Task Ready => _ready.Task;

    /// <summary>The running host (metrics, storage statistics, reads on its loop); null before start and after stop.</summary>
    public ServerHost? Host => Volatile.Read(ref _host);

    /// <summary>The last status read from the node (at most <see cref="StatusInterval"/> old); one immutable object.</summary>
    public UnderstudyServerStatus Status => Volatile.Read(ref _status);

    /// <summary>Whether this server was the primary at the last status read.</summary>
    public bool IsPrimary => Status.IsPrimary;

    /// <summary>The epoch at the last status read.</summary>
    public long Epoch => Status.Epoch;

    /// <summary>Why the server stopped on its own (a failed disk, a throwing state machine); null while it runs or after a requested stop.</summary>
    public string? StopReason => Volatile.Read(ref _stopReason);

    /// <summary>Reads the status now, on the node's loop.</summary>
    public async Task<UnderstudyServerStatus> ReadStatusAsync()
    {
        var host = Host ?? throw new InvalidOperationException($"the server {Address} is not running");
        var status = await host.ReadAsync(n => new UnderstudyServerStatus(n.Role, n.Epoch, n.Primary, n.IsServing, n.CommitIndex)).ConfigureAwait(false);
        Volatile.Write(ref _status, status);
        return status;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            // ServerHost validates the options first: a bad one fails the start with one line naming it.
            var host = await ServerHost.StartAsync(Options, _loggers, cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _host, host);
            if (Options.HttpPort > 0)
            {
                _http = await HttpEndpoints.StartServerAsync(host, new ForwardingLoggerProvider(_loggers), cancellationToken).ConfigureAwait(false);
            }

            await ReadStatusAsync().ConfigureAwait(false);
            LogMessages.ServerReady(_logger, Address.ToString(), Options.Listen.ToString(), string.Join(",", Options.Monitors), Options.HttpPort > 0 ? $", HTTP on http://{Options.HttpHost}:{Options.HttpPort}" : string.Empty);
            _watching = WatchAsync(host, _stopping.Token);
            _ready.TrySetResult();
        }
        catch (Exception e)
        {
            _ready.TrySetException(e);
            await CloseAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _watching.ConfigureAwait(false);
        await CloseAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _stopping.Dispose();
        }
    }

    /// <summary>Refreshes <see cref="Status"/> until stopped, and stops the application when the server must stop on its own.</summary>
    private async Task WatchAsync(ServerHost host, CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(StatusInterval);
        try
        {
            while (!host.Fatal.IsCompleted)
            {
                var tick = timer.WaitForNextTickAsync(stopping).AsTask();
                await Task.WhenAny(tick, host.Fatal).ConfigureAwait(false);
                if (host.Fatal.IsCompleted)
                {
                    break;
                }

                await tick.ConfigureAwait(false);
                await ReadStatusAsync().ConfigureAwait(false);
            }

            var reason = await host.Fatal.ConfigureAwait(false);
            Volatile.Write(ref _stopReason, reason);
            LogMessages.Stopping(_logger, Address.ToString(), reason);
            _lifetime?.StopApplication();
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // A requested stop.
        }
    }

    private async Task CloseAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        if (_http is not null)
        {
            await _http.DisposeAsync().ConfigureAwait(false);
        }

        if (Interlocked.Exchange(ref _host, null) is { } host)
        {
            await host.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Passes Kestrel's log lines to the application's logger factory.</summary>
    private sealed class ForwardingLoggerProvider(ILoggerFactory factory) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => factory.CreateLogger(categoryName);

        public void Dispose()
        {
        }
    }
}

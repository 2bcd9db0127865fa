using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.Monitor;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Server.Tests;

/// <summary>
/// A monitor and N servers in this process, each server an application of its own on the generic host with
/// <see cref="Counter"/> registered through AddUnderstudyServer, on ports the OS gave, in a temporary folder. Killing a
/// server stops its application (its port closes: the monitor sees the crash at once). Everything is stopped and the
/// folder deleted on dispose, even when the test fails.
/// </summary>
internal sealed class InProcessCluster : IAsyncDisposable
{
    private readonly DirectoryInfo _folder;
    private readonly int[] _ports;
    private readonly List<UnderstudyClient> _clients = [];

    private InProcessCluster(DirectoryInfo folder, int[] ports, MonitorHost monitor)
    {
        _folder = folder;
        _ports = ports;
        Monitor = monitor;
    }

    public MonitorHost Monitor { get; }

    /// <summary>The servers' applications, in start order; a killed one stays in the list, stopped.</summary>
    public List<IHost> Servers { get; } = [];

    public static CancellationToken Token => TestContext.Current.CancellationToken;

    public static async Task<InProcessCluster> StartAsync(int servers, Func<ServerHostOptions, ServerHostOptions>? change = null)
    {
        var folder = Directory.CreateTempSubdirectory("understudy-server-lib-");
        // Ports for three servers at least, so a test may start one later.
        var ports = LocalClusterOptions.FreePorts(Math.Max(servers, 3) + 2);
        var monitor = await MonitorHost.StartAsync(
            new MonitorHostOptions
            {
                HeartbeatListen = new NodeAddress("127.0.0.1", ports[0]),
                ClientListen = new NodeAddress("127.0.0.1", ports[1]),
                DataDirectory = Path.Combine(folder.FullName, "monitor"),
                HttpPort = 0,

                // Crashes are seen at once (port refused); a silent server is suspected only after a second, so a busy
                // test machine does not fail a primary over under the test.
                Protocol = new MonitorOptions { FailureTimeout = TimeSpan.FromSeconds(1), LeaseDuration = TimeSpan.FromMilliseconds(1500) },
            },
            NullLoggerFactory.Instance,
            Token);
        var cluster = new InProcessCluster(folder, ports, monitor);
        try
        {
            for (var i = 0; i < servers; i++)
            {
                await cluster.StartServerAsync(i, change);
            }
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    public NodeAddress ServerAddress(int i) => new("127.0.0.1", _ports[2 + i]);

    /// <summary>Starts server <paramref name="i"/> as its own application (again, after a kill: same port, same data).</summary>
    public async Task<IHost> StartServerAsync(int i, Func<ServerHostOptions, ServerHostOptions>? change = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddSingleton<ApplyGate>();
        builder.Services.AddUnderstudyServer<Counter>(options =>
        {
            var mine = options with
            {
                Listen = ServerAddress(i),
                Monitor = Monitor.Options.HeartbeatListen,
                DataDirectory = Path.Combine(_folder.FullName, $"server-{i}"),
                Fsync = Storage.FsyncPolicy.Never,
            };
            return change is null ? mine : change(mine);
        });
        var host = builder.Build();
        try
        {
            await host.StartAsync(Token);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        if (i < Servers.Count)
        {
            Servers[i] = host;
        }
        else
        {
            Servers.Add(host);
        }

        return host;
    }

    public static UnderstudyServer ServerOf(IHost host) => host.Services.GetRequiredService<UnderstudyServer>();

    /// <summary>A client from the container, as an application would get it (AddUnderstudyClient).</summary>
    public UnderstudyClient NewClient(TimeSpan? requestTimeout = null)
    {
        var services = new ServiceCollection();
        services.AddUnderstudyClient(new UnderstudyClientOptions
        {
            Monitor = Monitor.Options.ClientListen,
            Retry = new ClientOptions { RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(20) },
        });
        var client = services.BuildServiceProvider().GetRequiredService<UnderstudyClient>();
        _clients.Add(client);
        return client;
    }

    /// <summary>Waits until a server reports itself the primary, serving; returns its index.</summary>
    public async Task<int> WaitForPrimaryAsync(string phase, params int[] excluded)
    {
        var found = -1;
        await Poll.UntilAsync(
            async _ =>
            {
                for (var i = 0; i < Servers.Count; i++)
                {
                    if (!excluded.Contains(i) && ServerOf(Servers[i]).Host is not null && (await ServerOf(Servers[i]).ReadStatusAsync()).IsServing)
                    {
                        found = i;
                        return true;
                    }
                }

                return false;
            },
            Poll.DefaultTimeout,
            phase,
            async _ => "expected a serving primary among the servers; saw " + string.Join("; ", await Task.WhenAll(Servers.Select(async (s, i) => $"{i}: {(ServerOf(s).Host is null ? "stopped" : (await ServerOf(s).ReadStatusAsync()).ToString())}"))),
            Token);
        return found;
    }

    /// <summary>Waits until the primary (server <paramref name="primary"/>) counts <paramref name="servers"/> servers in its in-sync set.</summary>
    public async Task WaitForInSyncAsync(int primary, int servers, string phase)
    {
        var host = ServerOf(Servers[primary]).Host!;
        var inSync = 0;
        await Poll.UntilAsync(
            async _ => (inSync = await host.ReadAsync(n => n.Config.InSync.Length)) == servers,
            Poll.DefaultTimeout,
            phase,
            _ => Task.FromResult($"expected {servers} servers in sync, saw {inSync}"),
            Token);
    }

    /// <summary>Stops a server's application abruptly enough for the test: its port and connections close.</summary>
    public async Task KillAsync(int i)
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await Servers[i].StopAsync(stop.Token);
        Servers[i].Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        foreach (var server in Servers)
        {
            try
            {
                using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await server.StopAsync(stop.Token);
            }
            catch (ObjectDisposedException)
            {
                // Killed by the test already.
            }

            server.Dispose();
        }

        await Monitor.DisposeAsync();
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A file still being closed; the OS cleans its temporary folder eventually.
        }
    }
}

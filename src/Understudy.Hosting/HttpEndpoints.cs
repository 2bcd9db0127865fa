using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Hosting;

/// <summary>
/// The HTTP side (Kestrel): on each server, /primary and /replica for load balancers (as Patroni offers),
/// /health and /metrics; on the monitor, the live dashboard, /cluster, /events, /stream, /health and /metrics.
/// </summary>
public static class HttpEndpoints
{
    private static readonly string[] MemberStates = ["alive", "suspected", "down", "unknown"];
    private static readonly string[] MonitorStates = ["up", "lagging", "unreachable"];

    /// <summary>Serves a server's endpoints; returns the running app (dispose to stop).</summary>
    public static async Task<WebApplication> StartServerAsync(ServerHost host, ILoggerProvider? logs, CancellationToken cancellationToken)
    {
        var app = Build(host.Options.HttpHost, host.Options.HttpPort, logs);

        app.MapGet("/primary", async (HttpContext http) =>
        {
            var view = await host.ReadAsync(n => new { n.Role, n.HasLease, n.IsServing, n.Epoch, Primary = n.Primary.ToString() });
            var ok = view.Role == ServerRole.Primary && view.HasLease;
            return Results.Json(new { role = ok ? "primary" : view.Role.ToString().ToLowerInvariant(), epoch = view.Epoch, lease = view.HasLease, serving = view.IsServing, primary = view.Primary }, statusCode: ok ? 200 : 503);
        });

        app.MapGet("/replica", async (HttpContext http) =>
        {
            long? maxLag = null;
            if (http.Request.Query.TryGetValue("lag", out var lagText))
            {
                if (!long.TryParse(lagText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
                {
                    return Results.Json(new { error = $"lag must be a whole number of entries, got '{lagText}'" }, statusCode: 400);
                }

                maxLag = parsed;
            }

            var view = await host.ReadAsync(n => new
            {
                n.Role,
                InSync = n.Config.IsInSync(n.Self) && n.Config.Epoch == n.Epoch,
                Lag = Math.Max(0, n.PrimaryCommitIndex - n.State.AppliedIndex),
                Contact = n.MsSincePrimaryContact,
                n.Epoch,
            });
            var fresh = view.Contact is { } ms && ms < 1000;
            var ok = view.Role == ServerRole.Backup && view.InSync && fresh && (maxLag is null || view.Lag <= maxLag);
            return Results.Json(new { role = view.Role.ToString().ToLowerInvariant(), inSync = view.InSync, lag = view.Lag, msSincePrimary = view.Contact, epoch = view.Epoch }, statusCode: ok ? 200 : 503);
        });

        app.MapGet("/health", async () =>
        {
            var view = await host.ReadAsync(n => new
            {
                role = n.Role.ToString().ToLowerInvariant(),
                epoch = n.Epoch,
                primary = n.Primary.IsNone ? null : n.Primary.ToString(),
                lastIndex = n.LastIndex,
                commitIndex = n.CommitIndex,
                durableIndex = n.DurableIndex,
                lease = n.HasLease,
            });
            var fatal = host.Fatal.IsCompleted;
            return Results.Json(new { status = fatal ? "failed" : "ok", view.role, view.epoch, view.primary, view.lastIndex, view.commitIndex, view.durableIndex, view.lease }, statusCode: fatal ? 503 : 200);
        });

        // One scrape at a time: a second scrape's publishing must not change the histograms the first is writing out.
        var scrapeGate = new SemaphoreSlim(1, 1);
        app.MapGet("/metrics", async (HttpContext http) =>
        {
            await scrapeGate.WaitAsync(http.RequestAborted);
            try
            {
                await WriteServerMetricsAsync(http, host);
            }
            finally
            {
                scrapeGate.Release();
            }
        });

        await StartAsync(app, host.Options.HttpHost, host.Options.HttpPort, cancellationToken);
        return app;
    }

    private static async Task WriteServerMetricsAsync(HttpContext http, ServerHost host)
    {
        var m = host.Metrics;
        await host.ReadAsync(n =>
        {
            m.PublishBatches();
            var (turns, items) = host.LoopCounts;
            m.LoopTurns.IncTo(turns);
            m.LoopItems.IncTo(items);
            m.Epoch.Set(n.Epoch);
            m.IsPrimary.Set(n.Role == ServerRole.Primary ? 1 : 0);
            m.HasLease.Set(n.HasLease ? 1 : 0);
            m.LastIndex.Set(n.LastIndex);
            m.CommitIndex.Set(n.CommitIndex);
            m.DurableIndex.Set(n.DurableIndex);
            m.InSyncSize.Set(n.Config.InSync.Length);
            m.FirstIndex.Set(n.Log.FirstIndex);
            m.WindowEntries.Set(n.Log.WindowCount);
            m.SnapshotIndex.Set(n.SnapshotIndex);
            m.RetentionFloor.Set(GuardedStateMachine.Unwrap(n.State.Machine) is MessageStore store ? store.FirstRetained : 1);
            foreach (var f in n.Followers)
            {
                m.ReplicaMatchIndex.WithLabels(f.Address.ToString()).Set(f.MatchIndex);
                m.ReplicationRoundTrip.WithLabels(f.Address.ToString()).Set(f.LastRoundTrip / (double)TimeProvider.System.TimestampFrequency);
            }

            return 0;
        });
        var stats = host.StorageStats;
        m.LogBytes.IncTo(stats.BytesWritten);
        m.Fsyncs.IncTo(stats.FsyncCount);
        m.FsyncSeconds.IncTo(stats.TotalFsyncTime.TotalSeconds);
        m.LastFsyncSeconds.Set(stats.LastFsyncTime.TotalSeconds);
        m.Segments.Set(stats.SegmentCount);
        m.ManagedHeap.Set(GC.GetTotalMemory(forceFullCollection: false));
        await WriteMetricsAsync(http, m.Registry);
    }

    /// <summary>Serves the monitor's dashboard and endpoints; returns the running app (dispose to stop).</summary>
    public static async Task<WebApplication> StartMonitorAsync(MonitorHost host, ILoggerProvider? logs, CancellationToken cancellationToken)
    {
        var app = Build(host.Options.HttpHost, host.Options.HttpPort, logs);
        app.MapGet("/", () => Asset("index.html", "text/html; charset=utf-8"));
        app.MapGet("/dashboard.css", () => Asset("dashboard.css", "text/css; charset=utf-8"));
        app.MapGet("/dashboard.js", () => Asset("dashboard.js", "text/javascript; charset=utf-8"));
        app.MapGet("/cluster", async () => Results.Json(await host.StatusAsync(), ClusterStatus.Json));
        app.MapGet("/events", async () => Results.Json(await host.EventsAsync(), ClusterStatus.Json));
        var healthLogger = host.Logger;
        app.MapGet("/health", async () =>
        {
            var status = await host.StatusAsync();
            var group = status.Monitors!;
            var fatal = host.Fatal.IsCompleted;
            var problem = group.QuorumProblem();
            if (problem is not null)
            {
                LogMessages.HealthNoQuorum(healthLogger, problem);
            }

            var state = fatal ? "failed" : problem is not null ? "no-quorum" : "ok";
            var body = new
            {
                status = state,
                reason = fatal ? await host.Fatal : problem,
                role = group.IsActive ? "active" : "follower",
                active = group.Active,
                term = group.Term,
                quorum = group.HasQuorum,
                phase = status.Phase,
                epoch = status.Epoch,
                primary = status.Primary,
            };
            return Results.Json(body, ClusterStatus.Json, statusCode: state == "ok" ? 200 : 503);
        });
        app.MapGet("/metrics", async (HttpContext http) =>
        {
            var m = host.Metrics;
            var status = await host.StatusAsync();
            var group = status.Monitors!;
            m.Active.Set(group.IsActive ? 1 : 0);
            m.Term.Set(group.Term);
            foreach (var state in MonitorStates)
            {
                m.GroupMembers.WithLabels(state).Set(group.Members.Count(x => x.State == state));
            }

            m.Epoch.Set(status.Epoch);
            m.ConfigVersion.Set(status.Version);
            m.InSyncSize.Set(status.InSync.Count);
            m.Subscriptions.Set(status.Subscribers);
            m.LeaseRemaining.Set(status.LeaseRemainingMs / 1000);
            foreach (var state in MemberStates)
            {
                m.Members.WithLabels(state).Set(status.Members.Count(x => x.State == state));
            }

            await WriteMetricsAsync(http, m.Registry);
        });
        app.MapGet("/stream", (HttpContext http) => StreamAsync(host, http));
        await StartAsync(app, host.Options.HttpHost, host.Options.HttpPort, cancellationToken);
        return app;
    }

    /// <summary>Server-sent events: the status every 250 ms and each monitor event as it happens.</summary>
    private static async Task StreamAsync(MonitorHost host, HttpContext http)
    {
        var cancel = http.RequestAborted;
        http.Response.Headers.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        var (reader, subscription) = host.WatchEvents();
        using (subscription)
        {
            try
            {
                await SendAsync(http, "events", JsonSerializer.Serialize(await host.EventsAsync(), ClusterStatus.Json), cancel);
                var nextStatus = DateTime.UtcNow;
                while (!cancel.IsCancellationRequested)
                {
                    if (DateTime.UtcNow >= nextStatus)
                    {
                        await SendAsync(http, "status", (await host.StatusAsync()).ToJson(), cancel);
                        nextStatus = DateTime.UtcNow.AddMilliseconds(250);
                    }

                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    wait.CancelAfter(TimeSpan.FromMilliseconds(Math.Max(1, (nextStatus - DateTime.UtcNow).TotalMilliseconds)));
                    var batch = new List<EventView>();
                    try
                    {
                        if (await reader.WaitToReadAsync(wait.Token))
                        {
                            while (reader.TryRead(out var e))
                            {
                                batch.Add(EventView.From(e));
                            }
                        }
                    }
                    catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                    {
                    }

                    if (batch.Count > 0)
                    {
                        await SendAsync(http, "events", JsonSerializer.Serialize(batch, ClusterStatus.Json), cancel);

                        // Events usually change the picture: send the status right after them.
                        nextStatus = DateTime.UtcNow;
                    }
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
            }
        }
    }

    private static async Task SendAsync(HttpContext http, string name, string json, CancellationToken cancellationToken)
    {
        await http.Response.WriteAsync($"event: {name}\ndata: {json}\n\n", cancellationToken);
        await http.Response.Body.FlushAsync(cancellationToken);
    }

    private static async Task WriteMetricsAsync(HttpContext http, Prometheus.CollectorRegistry registry)
    {
        http.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await registry.CollectAndExportAsTextAsync(http.Response.Body, http.RequestAborted);
    }

    private static IResult Asset(string name, string contentType)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("Dashboard/" + name)
            ?? throw new InvalidOperationException($"dashboard asset {name} is missing from the build");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return Results.Text(reader.ReadToEnd(), contentType);
    }

    internal static WebApplication Build(string host, int port, ILoggerProvider? logs)
    {
        // The slim builder's defaults read appsettings.json from the working directory and reload it on change, which
        // puts a file watcher on that directory and everything below it. The default data folders live there, so every
        // log write woke a watcher thread: 17-18 % of a busy backup's CPU in round 19's profile. The endpoints read no
        // configuration files, so the content root is the application's own folder and nothing is watched.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(host is "0.0.0.0" ? IPAddress.Any : host is "localhost" ? IPAddress.Loopback : IPAddress.Parse(host), port);
        });
        return builder.Build();
    }

    private static async Task StartAsync(WebApplication app, string host, int port, CancellationToken cancellationToken)
    {
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e) when (e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) || e.InnerException is System.Net.Sockets.SocketException)
        {
            await app.DisposeAsync();
            throw new InvalidOperationException($"HTTP port {host}:{port} is in use: stop the process that holds it, or choose another with --http-port (0 turns HTTP off)", e);
        }
    }
}

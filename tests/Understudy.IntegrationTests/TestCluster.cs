using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Processes;

namespace Understudy.IntegrationTests;

/// <summary>
/// A real cluster for one test: the monitor and servers as separate processes on ports the OS picks, in a
/// temporary folder, every process killed and the folder deleted on dispose (even when the test fails).
/// Crashes are detected on the fast path (connection reset, port refused) whatever the timings; the monitor's
/// slow path (a silent server) gets a failure timeout and lease a few times the defaults, so that a test machine
/// busy with other work does not see spurious failovers. Every wait polls a condition with a deadline and says
/// what it saw.
/// </summary>
internal sealed class TestCluster : IAsyncDisposable
{
    private readonly DirectoryInfo _folder;
    private readonly List<UnderstudyClient> _clients = [];

    private TestCluster(LocalCluster cluster, DirectoryInfo folder)
    {
        Cluster = cluster;
        _folder = folder;
    }

    public LocalCluster Cluster { get; }

    public string Folder => _folder.FullName;

    /// <summary>Monitor timings for a loaded machine: suspect after 1 s of silence, leases of 1.5 s.</summary>
    public static IReadOnlyList<string> TolerantMonitorTimings { get; } = ["--failure-timeout-ms", "1000", "--lease-ms", "1500"];

    /// <summary>
    /// For tests that inject no hang and assert who stays primary: a server must be silent for 5 s to be suspected,
    /// so that even a badly overloaded machine does not fail a primary over under them (crashes are still seen at once).
    /// </summary>
    public static IReadOnlyList<string> PatientMonitorTimings { get; } = ["--failure-timeout-ms", "5000", "--lease-ms", "6000"];

    /// <summary>Starts a cluster on free ports; with <paramref name="serverHttp"/> each server serves HTTP (/primary, /replica, /health, /metrics) on a free port too.</summary>
    public static async Task<TestCluster> StartAsync(int servers = 3, bool start = true, string fsync = "always", IEnumerable<string>? serverArgs = null, IEnumerable<string>? monitorArgs = null, bool serverHttp = false, BuiltInStateMachine stateMachine = BuiltInStateMachine.Messages)
    {
        var folder = Directory.CreateTempSubdirectory("understudy-it-");
        var ports = LocalClusterOptions.FreePorts(servers + 3 + (serverHttp ? servers : 0));
        var options = new LocalClusterOptions
        {
            Servers = servers,
            ServerPorts = ports[..servers],
            MonitorPort = ports[servers],
            ClientPort = ports[servers + 1],
            HttpPort = ports[servers + 2],
            ServerHttp = serverHttp,
            ServerHttpPorts = serverHttp ? ports[(servers + 3)..] : null,
            DataDirectory = folder.FullName,
            Fsync = fsync,
            StateMachine = stateMachine,
            ServerArguments = [.. serverArgs ?? []],
            MonitorArguments = [.. monitorArgs ?? TolerantMonitorTimings],
        };
        var cluster = new TestCluster(new LocalCluster(options), folder);
        if (start)
        {
            cluster.Cluster.StartAll();
            await cluster.WaitHealthyAsync("start-up");
        }

        return cluster;
    }

    public UnderstudyClient NewClient(TimeSpan? requestTimeout = null)
    {
        var client = new UnderstudyClient(new UnderstudyClientOptions
        {
            Monitor = Cluster.MonitorAddress,
            Retry = new ClientOptions { RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(20) },
        });
        _clients.Add(client);
        return client;
    }

    /// <summary>Waits until a primary serves and every running server is alive and in sync.</summary>
    public async Task<ClusterStatus> WaitHealthyAsync(string phase, TimeSpan? timeout = null)
    {
        var status = await Cluster.WaitForHealthyAsync(timeout ?? TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        return status ?? throw new TimeoutException($"{phase}: the cluster did not become healthy in time. Last status: {await DescribeAsync()}\n{Logs(15)}");
    }

    /// <summary>Waits for a condition on the monitor's status; the message says the phase and what was seen.</summary>
    public async Task<ClusterStatus> WaitForAsync(string phase, Func<ClusterStatus, bool> condition, TimeSpan? timeout = null)
    {
        var status = await Cluster.WaitForAsync(condition, timeout ?? TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        return status ?? throw new TimeoutException($"{phase}: condition not met in time. Last status: {await DescribeAsync()}\n{Logs(15)}");
    }

    /// <summary>What the monitor says about one server (null if it does not list it).</summary>
    public static MemberStatus? Member(ClusterStatus status, LocalServer server) =>
        status.Members.FirstOrDefault(m => m.Address == server.Address.ToString());

    /// <summary>Every server but <paramref name="excluded"/>.</summary>
    public IEnumerable<LocalServer> ServersExcept(params LocalServer[] excluded) => Cluster.Servers.Where(s => !excluded.Contains(s));

    /// <summary>What a process has written to its log file so far (all its runs).</summary>
    public static string ProcessLog(ChildProcess process)
    {
        if (!File.Exists(process.LogPath))
        {
            return string.Empty;
        }

        using var stream = new FileStream(process.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Waits until a process's log has a line for which <paramref name="match"/> holds.</summary>
    public static Task WaitForLogLineAsync(ChildProcess process, Func<string, bool> match, string phase) =>
        Poll.UntilAsync(
            () => ProcessLog(process).Split('\n').Any(match),
            Poll.DefaultTimeout,
            phase,
            () => $"no such line in {process.Name}'s log; its last lines:\n{string.Join("\n", ProcessLog(process).Split('\n').TakeLast(15))}",
            TestContext.Current.CancellationToken);

    public async Task<LocalServer> PrimaryAsync() =>
        await Cluster.PrimaryAsync(TestContext.Current.CancellationToken) ?? throw new InvalidOperationException($"no primary: {await DescribeAsync()}");

    public async Task<string> DescribeAsync()
    {
        var s = await Cluster.StatusAsync(CancellationToken.None);
        return s is null ? "(monitor not answering)" : s.ToJson();
    }

    /// <summary>The tail of every process log, to explain a failure.</summary>
    public string Logs(int lines = 40)
    {
        var logs = Path.Combine(Folder, "logs");
        if (!Directory.Exists(logs))
        {
            return "(no logs)";
        }

        return string.Join("\n", Directory.GetFiles(logs).Order().Select(f => $"== {Path.GetFileName(f)}\n" + string.Join("\n", File.ReadLines(f).TakeLast(lines))));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var c in _clients)
        {
            await c.DisposeAsync();
        }

        await Cluster.DisposeAsync();
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A process still closing a file; the temp folder is cleaned by the OS eventually.
        }
    }
}

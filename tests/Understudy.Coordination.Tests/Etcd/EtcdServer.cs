using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;

namespace Understudy.Coordination.Tests.Etcd;

/// <summary>
/// A real single-member etcd (Debian's <c>etcd-server</c>, <c>/usr/bin/etcd</c>) as a child process: free ports from
/// the OS, a temporary data folder, killed and deleted on dispose. Tests skip with a reason when etcd is missing.
/// </summary>
public sealed class EtcdServer : IAsyncLifetime
{
    /// <summary>Where Debian's etcd-server package puts the binary.</summary>
    public const string Binary = "/usr/bin/etcd";

    private readonly List<string> _output = [];
    private string? _dataDir;
    private Process? _process;

    /// <summary>Why the tests cannot run here, or null when etcd is running.</summary>
    public string? SkipReason { get; private set; }

    /// <summary>The client URL, for example <c>http://127.0.0.1:41234</c>.</summary>
    public Uri ClientUrl { get; private set; } = new("http://127.0.0.1:2379");

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(Binary))
        {
            SkipReason = $"etcd is not installed ({Binary} is missing; apt-get install etcd-server): the etcd coordinator's tests need a real etcd";
            return;
        }

        _dataDir = Directory.CreateTempSubdirectory("understudy-etcd-").FullName;
        // Two distinct ports (two port-0 choices can return the same number), unused by this process's other tests.
        var ports = PortReservations.Take(2);
        var (clientPort, peerPort) = (ports[0], ports[1]);
        ClientUrl = new Uri($"http://127.0.0.1:{clientPort}");
        var peerUrl = $"http://127.0.0.1:{peerPort}";
        var start = new ProcessStartInfo(Binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--name", "test",
                     "--data-dir", _dataDir,
                     "--listen-client-urls", ClientUrl.ToString().TrimEnd('/'),
                     "--advertise-client-urls", ClientUrl.ToString().TrimEnd('/'),
                     "--listen-peer-urls", peerUrl,
                     "--initial-advertise-peer-urls", peerUrl,
                     "--initial-cluster", $"test={peerUrl}",
                     "--initial-cluster-state", "new",
                     "--log-level", "warn",
                 })
        {
            start.ArgumentList.Add(arg);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Binary}");
        _process.OutputDataReceived += (_, e) => Keep(e.Data);
        _process.ErrorDataReceived += (_, e) => Keep(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        await Poll.UntilAsync(
            async ct => !_process.HasExited && await AcceptsAsync(clientPort, ct),
            Poll.DefaultTimeout,
            "starting etcd",
            _ => Task.FromResult($"expected etcd to accept connections on {ClientUrl}; exited={_process.HasExited}; output: {Output()}"),
            TestContext.Current.CancellationToken);
    }

    /// <summary>Kills etcd at once (SIGKILL), as a crash would.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
    }

    /// <summary>The last lines etcd printed, for failure messages.</summary>
    public string Output()
    {
        lock (_output)
        {
            return string.Join(" | ", _output.TakeLast(10));
        }
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            Kill();
        }
        finally
        {
            _process?.Dispose();
            if (_dataDir is not null && Directory.Exists(_dataDir))
            {
                Directory.Delete(_dataDir, recursive: true);
            }
        }

        return ValueTask.CompletedTask;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Add(line);
            if (_output.Count > 200)
            {
                _output.RemoveAt(0);
            }
        }
    }

    private static async Task<bool> AcceptsAsync(int port, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

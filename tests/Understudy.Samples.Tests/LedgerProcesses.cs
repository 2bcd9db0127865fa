using System.Diagnostics;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Processes;
using Understudy.Protocol;

namespace Understudy.Samples.Tests;

/// <summary>
/// samples/Ledger as an operator would run it: an `understudy monitor` and three `ledger serve` replicas, each a real
/// process on a port the OS gave, in a temporary folder, its output in a log file. Every process is killed and the
/// folder deleted on dispose, even when the test fails.
/// </summary>
internal sealed class LedgerProcesses : IDisposable
{
    private readonly DirectoryInfo _folder;
    private readonly ChildProcess _monitor;
    private readonly Process?[] _replicas;
    private readonly int[] _ports;

    public LedgerProcesses(int replicas)
    {
        _folder = Directory.CreateTempSubdirectory("understudy-ledger-");
        _ports = LocalClusterOptions.FreePorts(replicas + 2);
        MonitorHeartbeat = new NodeAddress("127.0.0.1", _ports[0]);
        MonitorClient = new NodeAddress("127.0.0.1", _ports[1]);

        // Crashes are seen at once (connection reset, port refused); a silent replica is suspected only after a second,
        // so a busy test machine does not fail a primary over under the test.
        _monitor = new ChildProcess(
            "monitor",
            ["monitor", "--port", Text(_ports[0]), "--client-port", Text(_ports[1]), "--http-port", "0", "--data", Path.Combine(_folder.FullName, "monitor"), "--failure-timeout-ms", "1000", "--lease-ms", "1500"],
            Path.Combine(_folder.FullName, "logs", "monitor.log"));
        _replicas = new Process?[replicas];
    }

    public NodeAddress MonitorHeartbeat { get; }

    public NodeAddress MonitorClient { get; }

    public int Count => _replicas.Length;

    public NodeAddress Address(int i) => new("127.0.0.1", _ports[2 + i]);

    public void StartAll()
    {
        _monitor.Start();
        for (var i = 0; i < _replicas.Length; i++)
        {
            Start(i);
        }
    }

    /// <summary>SIGKILL: the replica dies as in a crash, with no chance to say goodbye.</summary>
    public void Kill(int i)
    {
        if (_replicas[i] is { } process)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(TimeSpan.FromSeconds(10));
            process.Dispose();
            _replicas[i] = null;
        }
    }

    /// <summary>The last lines of every log, to explain a failure.</summary>
    public string Logs(int lines = 20)
    {
        var folder = Path.Combine(_folder.FullName, "logs");
        return !Directory.Exists(folder) ? "(no logs)" : string.Join("\n", Directory.GetFiles(folder).Order().Select(f =>
        {
            using var stream = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return $"== {Path.GetFileName(f)}\n" + string.Join("\n", reader.ReadToEnd().Split('\n').TakeLast(lines));
        }));
    }

    public void Dispose()
    {
        for (var i = 0; i < _replicas.Length; i++)
        {
            Kill(i);
        }

        _monitor.Dispose();
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A file still being closed; the OS cleans its temporary folder eventually.
        }
    }

    private void Start(int i)
    {
        var ledger = Path.Combine(AppContext.BaseDirectory, "ledger", "Ledger.dll");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in (string[])[ledger, "serve", Text(_ports[2 + i]), MonitorHeartbeat.ToString(), Path.Combine(_folder.FullName, $"replica-{i}")])
        {
            info.ArgumentList.Add(argument);
        }

        var logs = Path.Combine(_folder.FullName, "logs");
        Directory.CreateDirectory(logs);
        var log = new StreamWriter(new FileStream(Path.Combine(logs, $"replica-{i}.log"), FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Write(log, e.Data);
        process.ErrorDataReceived += (_, e) => Write(log, e.Data);
        process.Exited += (_, _) => log.Dispose();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _replicas[i] = process;
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        try
        {
            lock (log)
            {
                log.WriteLine(line);
            }
        }
        catch (ObjectDisposedException)
        {
            // The process has exited and its log is closed.
        }
    }

    private static string Text(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

using Understudy.Orchestration.Bench;
using Understudy.Orchestration.Clusters;

namespace Understudy.ChaosTests;

/// <summary>
/// A bench run leaves its result, plots and the processes' logs in its run folder, and the servers' stores only when
/// asked to or when the run failed: a few dozen runs of them once filled a disk. No timing assertions.
/// </summary>
public sealed class ThroughputBenchTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-throughput-");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_passing_run_keeps_its_result_and_logs_and_drops_the_servers_stores_unless_asked(bool keepData)
    {
        var options = new ThroughputOptions
        {
            Clients = 4,
            Connections = 2,
            Seconds = 1,
            WarmupSeconds = 0.5,
            Fsync = "never",
            StateMachine = Understudy.Core.StateMachines.BuiltInStateMachine.Kv,
            GetRatio = 0.5,
            KeySpace = 100,
            KeepData = keepData,
            RunFolder = Path.Combine(_folder.FullName, keepData ? "kept" : "dropped"),
        };
        var result = await new ThroughputBench(options, line => output.WriteLine(line)).RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.KeyValueCheck is { Valid: true }, "the key-value check judged the run invalid");
        Assert.True(result.Acknowledged > 0 && result.Errors == 0 && result.InSyncThroughout, $"expected a passing run: {result.Acknowledged} acknowledged, {result.Errors} errors, in sync throughout {result.InSyncThroughout}");
        var data = Path.Combine(options.RunFolder, "data");
        Assert.True(File.Exists(Path.Combine(options.RunFolder, "result.json")), "result.json missing from the run folder");
        Assert.NotEmpty(Directory.EnumerateFiles(Path.Combine(data, "logs")));
        var stores = Directory.EnumerateDirectories(data, "server-*").ToList();
        Assert.True(stores.Count == (keepData ? 3 : 0), $"with keepData {keepData}: expected {(keepData ? 3 : 0)} server stores in {data}, found {stores.Count}");
    }

    [Fact]
    public void Stores_go_only_after_a_passing_run_and_only_the_servers()
    {
        var data = Path.Combine(_folder.FullName, "data");
        var store = ServerStores.FolderOf(data, 8090);
        Directory.CreateDirectory(store);
        File.WriteAllBytes(Path.Combine(store, "segment.log"), new byte[1000]);
        Directory.CreateDirectory(Path.Combine(data, "logs"));
        Directory.CreateDirectory(Path.Combine(data, "monitor"));

        Assert.Equal(0, ServerStores.DropAfterPassing(data, passed: false, keep: false));
        Assert.Equal(0, ServerStores.DropAfterPassing(data, passed: true, keep: true));
        Assert.True(Directory.Exists(store), "a failed run, or one asked to keep its data, keeps the stores");

        Assert.Equal(1000, ServerStores.DropAfterPassing(data, passed: true, keep: false));
        Assert.False(Directory.Exists(store), "a passing run drops the server's store");
        Assert.True(Directory.Exists(Path.Combine(data, "logs")) && Directory.Exists(Path.Combine(data, "monitor")), "the logs and the monitor's folder stay");
        Assert.Equal(0, ServerStores.DropAfterPassing(Path.Combine(_folder.FullName, "no such folder"), passed: true, keep: false));
    }

    public void Dispose()
    {
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A process was still closing a log file; the temporary folder goes with the OS's clean-up.
        }
    }
}

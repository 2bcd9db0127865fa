using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;

namespace Understudy.Server.Tests;

/// <summary>
/// A restarted server must not keep what recovery allocated: whole segment files read into one buffer and the tail's
/// lists are large-object-heap garbage the GC neither compacts nor returns by itself (50-80 MiB resident for the life of
/// every restarted server in the round-19 soak runs). The host compacts the heap once, before serving.
/// </summary>
public sealed class StartupMemoryTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-startup-memory-");

    [Fact]
    public async Task Start_up_ends_with_a_compacting_full_collection()
    {
        var ports = LocalClusterOptions.FreePorts(2);
        var before = GC.GetGCMemoryInfo(GCKind.FullBlocking).Index;

        // No monitor listens on the second port: the server starts and keeps trying to reach it.
        await using var host = await ServerHost.StartAsync(
            new ServerHostOptions
            {
                Listen = new NodeAddress("127.0.0.1", ports[0]),
                Monitors = [new NodeAddress("127.0.0.1", ports[1])],
                DataDirectory = _folder.FullName,
                Fsync = Storage.FsyncPolicy.Never,
            },
            NullLoggerFactory.Instance,
            TestContext.Current.CancellationToken);

        var full = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        Assert.True(full.Index > before, $"start-up: expected a full blocking collection after recovery (index above {before}), the last one has index {full.Index}");
        Assert.True(full.Compacted, $"start-up: the full collection (index {full.Index}) did not compact");
    }

    public void Dispose() => _folder.Delete(recursive: true);
}

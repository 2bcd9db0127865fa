using System.Text.RegularExpressions;
using System.Xml.Linq;
using Understudy.Orchestration.Workloads;

namespace Understudy.IntegrationTests;

/// <summary>
/// The `understudy` script precompiles (ReadyToRun) only the assemblies a monitor loads and a server does not
/// (src/Understudy.Cli/MonitorReadyToRun.targets), so that servers keep running the plain build's code: round 20 found
/// precompiled code made a catching-up backup costlier. That holds only while no server loads one of them, which this
/// checks on real server processes that have served, replicated and failed over.
/// </summary>
public sealed partial class MonitorOnlyAssembliesTests
{
    [Fact]
    public async Task Servers_load_none_of_the_assemblies_precompiled_for_monitors()
    {
        var monitorOnly = MonitorOnlyAssemblies();
        Assert.Contains("DotNext.Net.Cluster", monitorOnly);

        await using var test = await TestCluster.StartAsync();
        await using var work = new Workload();
        work.StartWriter(test.NewClient(), "m");
        await work.WaitForAckedAsync(200, "writes before the kill");
        var primary = await test.PrimaryAsync();
        primary.Process.Kill();
        var before = work.Recorder.Acknowledged;
        await test.WaitForAsync("promotion after kill -9", s => s.Primary is not null && s.Primary != primary.Address.ToString());
        await work.WaitForAckedAsync(before + 200, "writes after the failover");
        await work.StopAsync(TestContext.Current.CancellationToken);

        var servers = test.ServersExcept(primary).ToList();
        Assert.All(servers, s => Assert.True(s.Process.Running, $"{s.Process.Name} should still run; log:\n{TestCluster.ProcessLog(s.Process)}"));
        foreach (var server in servers)
        {
            var loaded = LoadedAssemblies(server.Process.Pid);
            Assert.Contains("Understudy.Core", loaded);
            var wrong = loaded.Intersect(monitorOnly, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            Assert.True(wrong.Count == 0,
                $"{server.Process.Name} loaded {string.Join(", ", wrong)}, which the script precompiles for monitors only: " +
                "take them out of MonitorOnlyAssembly in src/Understudy.Cli/MonitorReadyToRun.targets, or keep the server from loading them");
        }
    }

    // The MonitorOnlyAssembly list of the targets file, as assembly file names without .dll.
    private static HashSet<string> MonitorOnlyAssemblies()
    {
        var targets = XDocument.Load(Path.Combine(RepositoryRoot(), "src", "Understudy.Cli", "MonitorReadyToRun.targets"));
        return targets.Descendants("MonitorOnlyAssembly")
            .SelectMany(e => ((string?)e.Attribute("Include") ?? string.Empty).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToHashSet(StringComparer.Ordinal);
    }

    // The managed assemblies a process has mapped (/proc/PID/maps names each file it maps).
    private static HashSet<string> LoadedAssemblies(int pid) =>
        [.. File.ReadAllLines($"/proc/{pid}/maps").Select(l => DllPath().Match(l)).Where(m => m.Success).Select(m => Path.GetFileNameWithoutExtension(m.Value))];

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Understudy.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no Understudy.slnx above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"/[^ ]+\.dll$")]
    private static partial Regex DllPath();
}

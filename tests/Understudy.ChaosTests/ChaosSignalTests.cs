using System.Diagnostics;
using Understudy.Orchestration.Chaos;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Processes;

namespace Understudy.ChaosTests;

/// <summary>
/// `chaos` stopped by a signal mid-run leaves no network namespace and no bridge behind: a stuck run once did,
/// because only the normal end of a run cleaned up.
/// </summary>
public sealed class ChaosSignalTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-chaos-signal-");

    [Theory]
    [InlineData("SIGTERM", 15)]
    [InlineData("SIGINT", 2)]
    public async Task A_signal_mid_run_removes_the_namespaces_and_the_bridge(string name, int signal)
    {
        if (NamespaceNetwork.Unsupported() is { } why)
        {
            Assert.Skip($"partition needs Linux network namespaces: {why}");
        }

        var ct = TestContext.Current.CancellationToken;
        // SIGINT at its default even when this test run was started in the background (env execs: the pid is the CLI's).
        var info = CliLauncher.StartInfo(["chaos", "partition", "--faults", "200", "--seed", "3", "--clients", "2", "--out", Path.Combine(_folder.FullName, name)], Posix.SigIntRestoringPrefix());
        using var chaos = Process.Start(info)!;
        var lines = new List<string>();
        void Collect(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is not null)
            {
                lock (lines)
                {
                    lines.Add(e.Data);
                }
            }
        }

        chaos.OutputDataReceived += Collect;
        chaos.ErrorDataReceived += Collect;
        chaos.BeginOutputReadLine();
        chaos.BeginErrorReadLine();
        var prefix = $"us{chaos.Id}";
        try
        {
            string Seen()
            {
                lock (lines)
                {
                    return string.Join('\n', lines.TakeLast(20));
                }
            }

            // Mid-run: the cluster is up in its namespaces and the first fault is under way.
            await Poll.UntilAsync(() => Seen().Contains("fault 1/", StringComparison.Ordinal) && Namespaces(prefix).Count > 0, TimeSpan.FromSeconds(90), "the run's first fault", Seen, ct);

            // Stuck: every server and the monitor frozen, so the clients' calls, the status polls and the run's
            // orderly shutdown all wait far longer than the CLI gives a cancelled command before it exits.
            foreach (var child in Children(chaos.Id))
            {
                Posix.Signal(child, Posix.SigStop);
            }

            Assert.True(Posix.Signal(chaos.Id, signal));
            await chaos.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromSeconds(60), ct);
            output.WriteLine(Seen());

            Assert.Empty(Namespaces(prefix));
            Assert.False(Run("ip", "link", "show", prefix + "b").Code == 0, $"the bridge {prefix}b is still there");
            Assert.DoesNotContain(prefix + "v", Run("ip", "link", "show").Output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var child in Children(chaos.Id))
            {
                Posix.Signal(child, Posix.SigKill);
            }

            if (!chaos.HasExited)
            {
                chaos.Kill(entireProcessTree: true);
            }

            // Never leave a namespace behind, whatever the test saw.
            foreach (var ns in Namespaces(prefix))
            {
                Run("ip", "netns", "del", ns);
            }

            Run("ip", "link", "del", prefix + "b");
            for (var i = 0; i < 8; i++)
            {
                Run("ip", "link", "del", $"{prefix}v{i}");
            }
        }
    }

    public void Dispose()
    {
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A log still open; the temporary folder goes with the OS's clean-up.
        }
    }

    /// <summary>The processes whose parent is <paramref name="parent"/> (the run's servers and monitor).</summary>
    private static List<int> Children(int parent)
    {
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));

                // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == parent)
                {
                    children.Add(pid);
                }
            }
            catch (IOException)
            {
                // Exited while we looked.
            }
        }

        return children;
    }

    private static List<string> Namespaces(string prefix) =>
        [.. Run("ip", "netns", "list").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).Where(n => n.StartsWith(prefix + "n", StringComparison.Ordinal))];

    private static (int Code, string Output) Run(params string[] command) => ExternalCommand.Run(command);
}

using System.Diagnostics;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Processes;

namespace Understudy.IntegrationTests;

/// <summary>
/// A child of <c>up</c> or a bench (<see cref="ParentWatchdog"/>) must live as long as its parent process, not as
/// long as the thread that happened to start it. Linux's parent-death signal follows the starting thread: .NET
/// starts a child on whatever pool thread calls <see cref="Process.Start()"/>, and the pool retires idle threads,
/// so a monitor armed with it was SIGKILLed, without a log line, seconds to minutes into a bench run.
/// </summary>
public sealed class ParentWatchdogTests
{
    [Fact]
    public async Task A_supervised_child_outlives_the_thread_that_started_it()
    {
        var data = Directory.CreateTempSubdirectory("understudy-watchdog-").FullName;
        var ports = LocalClusterOptions.FreePorts(2);
        var info = CliLauncher.StartInfo(["monitor", "--port", ports[0].ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--client-port", ports[1].ToString(System.Globalization.CultureInfo.InvariantCulture), "--http-port", "0", "--data", data]);
        info.Environment[ParentWatchdog.Variable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Process? child = null;
        try
        {
            // Started on a thread of its own that ends once the child is up (and has armed whatever it arms at start).
            var starter = new Thread(() =>
            {
                child = new Process { StartInfo = info };
                child.OutputDataReceived += (_, e) => { if (e.Data is { } l) { lines.Enqueue(l); } };
                child.ErrorDataReceived += (_, e) => { if (e.Data is { } l) { lines.Enqueue(l); } };
                child.Start();
                child.BeginOutputReadLine();
                child.BeginErrorReadLine();
                var deadline = Stopwatch.StartNew();
                while (!lines.Any(l => l.Contains("Listening on", StringComparison.Ordinal)) && !child.HasExited && deadline.Elapsed < TimeSpan.FromSeconds(60))
                {
                    Thread.Sleep(20);
                }
            });
            starter.Start();
            starter.Join();
            Assert.NotNull(child);
            Assert.True(!child.HasExited && lines.Any(l => l.Contains("Listening on", StringComparison.Ordinal)),
                $"phase: the monitor starts; expected it listening, got exited={child.HasExited}: {string.Join('\n', lines)}");

            // The starting thread has ended: a parent-death signal tied to it would have killed the child within
            // milliseconds. Two seconds is a bound on that, not a wait for anything to happen.
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var exited = false;
            try
            {
                await child.WaitForExitAsync(grace.Token);
                exited = true;
            }
            catch (OperationCanceledException) when (grace.IsCancellationRequested)
            {
            }

            Assert.False(exited, $"the child died when the thread that started it ended (exit code {(exited ? child.ExitCode : 0)}): {string.Join('\n', lines)}");
        }
        finally
        {
            if (child is { HasExited: false })
            {
                child.Kill(entireProcessTree: true);
                await child.WaitForExitAsync(CancellationToken.None);
            }

            child?.Dispose();
            Directory.Delete(data, recursive: true);
        }
    }
}

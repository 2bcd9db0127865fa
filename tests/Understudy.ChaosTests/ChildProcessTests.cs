using Understudy.Orchestration.Processes;

namespace Understudy.ChaosTests;

/// <summary>A restart that cannot happen says so: a silent no-op once left a chaos run with a dead monitor.</summary>
public sealed class ChildProcessTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("understudy-child-");

    [Fact]
    public void Start_throws_naming_the_process_when_the_old_one_has_not_exited()
    {
        // `sh -c 'exec sleep 600' sh understudy ...`: the CLI's path and arguments become sh's unused positional
        // arguments, so the child is a plain long sleep that never exits on its own.
        using var child = new ChildProcess("sleeper", ["--version"], Path.Combine(_folder.FullName, "sleeper.log"), ["sh", "-c", "exec sleep 600", "sh"])
        {
            ExitWait = TimeSpan.FromMilliseconds(200),
        };
        child.Start();
        var first = child.Pid;
        Assert.True(child.Running);

        var e = Assert.Throws<ChildProcessStartException>(child.Start);
        Assert.Equal("sleeper", e.Process);
        Assert.Contains("sleeper", e.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {first}", e.Message, StringComparison.Ordinal);
        Assert.Equal(first, child.Pid);
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
}

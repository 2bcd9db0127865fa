using System.Diagnostics;
using Understudy.Orchestration.Processes;

namespace Understudy.IntegrationTests;

/// <summary>
/// One `understudy` command run as a real process (`dotnet understudy.dll ...` from the test output folder), with
/// its standard input open for the test to write, and its output and errors collected line by line. Killed
/// (with anything it started) on dispose if it is still running.
/// </summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];
    private readonly List<string> _errors = [];
    private readonly Lock _lock = new();
    private readonly string? _ownedFolder;

    private CliProcess(Process process, string command, string? ownedFolder)
    {
        _process = process;
        Command = command;
        _ownedFolder = ownedFolder;
    }

    public string Command { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public StreamWriter Input => _process.StandardInput;

    public IReadOnlyList<string> Output
    {
        get
        {
            lock (_lock)
            {
                return [.. _output];
            }
        }
    }

    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (_lock)
            {
                return [.. _errors];
            }
        }
    }

    /// <summary>Starts `understudy ARGUMENTS` in a fresh temp folder (deleted on dispose).</summary>
    public static CliProcess Start(params string[] arguments) => StartIn(null, arguments);

    /// <summary>Starts `understudy ARGUMENTS` in <paramref name="workingDirectory"/> (default: a fresh temp folder).</summary>
    public static CliProcess StartIn(string? workingDirectory, params string[] arguments)
    {
        // With SIGINT at its default even when this test run was started in the background: the tests interrupt with it.
        var info = CliLauncher.StartInfo(arguments, Posix.SigIntRestoringPrefix());
        info.RedirectStandardInput = true;
        var owned = workingDirectory is null ? Directory.CreateTempSubdirectory("understudy-cli-").FullName : null;
        info.WorkingDirectory = workingDirectory ?? owned;
        var process = new Process { StartInfo = info };
        var cli = new CliProcess(process, "understudy " + string.Join(' ', arguments), owned);
        process.OutputDataReceived += (_, e) => cli.Collect(cli._output, e.Data);
        process.ErrorDataReceived += (_, e) => cli.Collect(cli._errors, e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {cli.Command}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return cli;
    }

    /// <summary>Waits for the process to exit (and its output to be read); its exit code.</summary>
    public async Task<int> WaitForExitAsync(string phase, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(limit);
        try
        {
            await _process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{phase}: `{Command}` did not exit within {limit.TotalSeconds:0} s. {Describe()}");
        }

        return _process.ExitCode;
    }

    /// <summary>Its output and errors so far, to explain a failure.</summary>
    public string Describe(int lines = 30) =>
        $"stdout (last {lines} lines):\n{string.Join("\n", Output.TakeLast(lines))}\nstderr:\n{string.Join("\n", Errors.TakeLast(lines))}";

    /// <summary>kill -9 of this process alone (what it started is left to fend for itself).</summary>
    public void KillAlone() => Kill(entireProcessTree: false);

    /// <summary>Kills this process and every process it started.</summary>
    public void Kill() => Kill(entireProcessTree: true);

    private void Kill(bool entireProcessTree)
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited in between.
        }
    }

    public void Dispose()
    {
        Kill();
        _process.WaitForExit(TimeSpan.FromSeconds(10));
        _process.Dispose();
        if (_ownedFolder is not null)
        {
            try
            {
                Directory.Delete(_ownedFolder, recursive: true);
            }
            catch (IOException)
            {
                // Still in use by a process on its way out; the OS cleans temp folders.
            }
        }
    }

    private void Collect(List<string> lines, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            lines.Add(line);
        }
    }
}

using System.Diagnostics;

namespace Understudy.Cli.Tests;

/// <summary>A long-running `understudy` (an `up`): its input open for commands, its output collected; killed with its children on dispose.</summary>
internal sealed class RunningCli : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly Lock _lock = new();

    public RunningCli(string workingDirectory, IReadOnlyList<string> arguments)
    {
        _process = new Process { StartInfo = Cli.StartInfo(workingDirectory, arguments) };
        _process.OutputDataReceived += (_, e) => Add(e.Data);
        _process.ErrorDataReceived += (_, e) => Add(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lock)
            {
                return [.. _lines];
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>Waits until a line printed from <paramref name="from"/> on matches; that line, or a failure naming what was printed.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan within, int from = 0)
    {
        string? found = null;
        var ok = await Cli.EventuallyAsync(() => (found = Lines.Skip(from).FirstOrDefault(match)) is not null || _process.HasExited, within);
        return ok && found is not null ? found : throw new TimeoutException($"no matching line within {within.TotalSeconds:0} s; printed:\n{string.Join('\n', Lines)}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan within)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(within);
        await _process.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is not null)
        {
            lock (_lock)
            {
                _lines.Add(line);
            }
        }
    }
}

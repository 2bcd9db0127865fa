using System.Diagnostics;

namespace Understudy.Orchestration.Processes;

/// <summary>
/// One child `understudy` process (a server or the monitor) run by `up`, `demo` or `chaos`: its output goes
/// to a log file, it dies with its parent, and it can be killed (SIGKILL), stopped (SIGTERM), paused
/// (SIGSTOP), resumed (SIGCONT) and started again with the same arguments.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private readonly IReadOnlyList<string> _arguments;
    private readonly IReadOnlyList<string> _prefix;
    private readonly Lock _lock = new();
    private Process? _process;
    private StreamWriter? _log;

    public ChildProcess(string name, IReadOnlyList<string> arguments, string logPath, IReadOnlyList<string>? prefix = null)
    {
        Name = name;
        _arguments = arguments;
        _prefix = prefix ?? [];
        LogPath = logPath;
    }

    /// <summary>How long <see cref="Start"/> waits for an earlier process of this child to be seen exiting.</summary>
    public TimeSpan ExitWait { get; init; } = TimeSpan.FromSeconds(10);

    public string Name { get; }

    public string LogPath { get; }

    public int Pid { get; private set; }

    public bool Paused { get; private set; }

    public bool Running
    {
        get
        {
            lock (_lock)
            {
                return _process is { HasExited: false };
            }
        }
    }

    /// <summary>Raised (on a thread-pool thread) when the process exits, with its exit code.</summary>
    public event Action<ChildProcess, int>? Exited;

    /// <summary>
    /// Starts the process (again). Throws <see cref="ChildProcessStartException"/>, naming the process and why,
    /// when nothing could be started: a restart that silently did nothing once left a chaos run waiting for ever
    /// on a monitor that was never started again.
    /// </summary>
    public void Start()
    {
        lock (_lock)
        {
            if (_process is { HasExited: false } running)
            {
                // Started twice, or restarted before the old process was reaped: never silently keep the old one,
                // and never pretend a new one was started.
                if (!running.WaitForExit(ExitWait))
                {
                    throw new ChildProcessStartException(Name, $"its previous process (pid {running.Id}{(Paused ? ", paused" : string.Empty)}) has not exited within {ExitWait.TotalSeconds:0.#} s");
                }
            }

            Directory.CreateDirectory(Path.GetDirectoryName(LogPath)!);
            _log?.Dispose();
            _log = new StreamWriter(new FileStream(LogPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            var info = CliLauncher.StartInfo(_arguments, _prefix);
            info.Environment[ParentWatchdog.Variable] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var process = new Process { StartInfo = info, EnableRaisingEvents = true };
            var log = _log;
            process.OutputDataReceived += (_, e) => Write(log, e.Data);
            process.ErrorDataReceived += (_, e) => Write(log, e.Data);
            process.Exited += (_, _) => OnExited(process);
            try
            {
                if (!process.Start())
                {
                    throw new ChildProcessStartException(Name, "the operating system started no process");
                }
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                process.Dispose();
                throw new ChildProcessStartException(Name, e.Message, e);
            }

            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _process = process;
            Pid = process.Id;
            Paused = false;
        }
    }

    /// <summary>
    /// SIGKILL: a crash, as the original's kill scripts did. Returns once the process is gone, so a restart
    /// right after it really starts a new process (and finds the port and the data folder free).
    /// </summary>
    public void Kill()
    {
        Process? killed = null;
        lock (_lock)
        {
            if (_process is { HasExited: false } p)
            {
                killed = p;
                if (Paused)
                {
                    Posix.Signal(p.Id, Posix.SigCont);
                }

                try
                {
                    p.Kill(entireProcessTree: false);
                }
                catch (InvalidOperationException)
                {
                    // Exited in between.
                }

                Paused = false;
            }
        }

        killed?.WaitForExit(TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// SIGKILL without waiting for anything, not even the lock: for a signal handler tearing a stuck run down.
    /// A paused process dies of SIGKILL too.
    /// </summary>
    public void KillNow()
    {
        var p = Volatile.Read(ref _process);
        try
        {
            if (p is { HasExited: false })
            {
                Posix.Signal(p.Id, Posix.SigKill);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            // Gone already, or disposed by the run's own clean-up.
        }
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within the grace period.</summary>
    public void Stop(TimeSpan grace)
    {
        Process? p;
        lock (_lock)
        {
            p = _process is { HasExited: false } running ? running : null;
            if (p is not null && Paused)
            {
                Posix.Signal(p.Id, Posix.SigCont);
                Paused = false;
            }
        }

        if (p is null)
        {
            return;
        }

        Posix.Signal(p.Id, Posix.SigTerm);
        if (!p.WaitForExit(grace))
        {
            Kill();
        }
    }

    /// <summary>SIGSTOP: the process freezes (its sockets stay open, the kernel keeps accepting).</summary>
    public bool Pause()
    {
        lock (_lock)
        {
            if (_process is { HasExited: false } p && Posix.Signal(p.Id, Posix.SigStop))
            {
                Paused = true;
                return true;
            }

            return false;
        }
    }

    /// <summary>SIGCONT: the process carries on with whatever stale view it had.</summary>
    public bool Resume()
    {
        lock (_lock)
        {
            if (_process is { HasExited: false } p && Posix.Signal(p.Id, Posix.SigCont))
            {
                Paused = false;
                return true;
            }

            return false;
        }
    }

    public bool WaitForExit(TimeSpan timeout)
    {
        Process? p;
        lock (_lock)
        {
            p = _process;
        }

        return p is null || p.WaitForExit(timeout);
    }

    public void Dispose()
    {
        Kill();
        WaitForExit(TimeSpan.FromSeconds(5));
        lock (_lock)
        {
            _process?.Dispose();
            _process = null;
            _log?.Dispose();
            _log = null;
        }
    }

    private static void Write(StreamWriter log, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (log)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // The log closed while the process was exiting.
            }
        }
    }

    private void OnExited(Process process)
    {
        int code;
        try
        {
            code = process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            code = -1;
        }

        Exited?.Invoke(this, code);
    }
}

/// <summary>A child process could not be (re)started; the message names it and says why.</summary>
public sealed class ChildProcessStartException : Exception
{
    public ChildProcessStartException()
    {
    }

    public ChildProcessStartException(string message)
        : base(message)
    {
    }

    public ChildProcessStartException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public ChildProcessStartException(string process, string reason, Exception? inner = null)
        : base($"could not start {process}: {reason}", inner)
    {
        Process = process;
        Reason = reason;
    }

    /// <summary>The child's name (monitor, server1, ...).</summary>
    public string? Process { get; }

    /// <summary>Why it could not be started.</summary>
    public string? Reason { get; }
}

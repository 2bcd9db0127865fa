namespace Understudy.Orchestration.Processes;

/// <summary>
/// Makes a child of <c>understudy up</c> exit when <c>up</c> dies, however it dies (even SIGKILL), so no
/// orphan servers keep ports busy: a background check notices within 250 ms when the process has been handed to
/// another parent. Linux's parent-death signal (prctl PR_SET_PDEATHSIG) is deliberately not used: it fires when the
/// *thread* that started the child ends, and .NET starts a child on whatever pool thread calls Process.Start, which
/// the pool retires when idle; monitors were SIGKILLed so, without a log line, in the middle of bench runs.
/// </summary>
public static class ParentWatchdog
{
    /// <summary>Environment variable <c>up</c> sets to its own pid for every child.</summary>
    public const string Variable = "UNDERSTUDY_PARENT_PID";

    public static void StartIfSupervised()
    {
        var text = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(text) || !int.TryParse(text, out var parent) || OperatingSystem.IsWindows())
        {
            return;
        }

        if (Posix.ParentPid() != parent)
        {
            // The parent died before this process got here.
            Environment.Exit(3);
        }

        var thread = new Thread(() =>
        {
            while (true)
            {
                Thread.Sleep(250);
                if (Posix.ParentPid() != parent || !Posix.Exists(parent))
                {
                    Console.Error.WriteLine($"understudy: parent process {parent} is gone; exiting");
                    Environment.Exit(3);
                }
            }
        })
        {
            IsBackground = true,
            Name = "parent-watchdog",
        };
        thread.Start();
    }
}

namespace Understudy.Orchestration.Processes;

/// <summary>
/// Makes a child of <c>understudy up</c> exit when <c>up</c> dies, however it dies (even SIGKILL), so no
/// orphan servers keep ports busy. Linux gets a parent-death signal from the kernel; everywhere, a
/// background check notices when the process has been handed to another parent.
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

        Posix.DieWithParent();
        if (Posix.ParentPid() != parent)
        {
            // The parent died before we armed the signal.
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

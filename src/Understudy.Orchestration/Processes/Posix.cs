using System.Runtime.InteropServices;

namespace Understudy.Orchestration.Processes;

/// <summary>
/// The few POSIX calls .NET does not offer: sending SIGSTOP/SIGCONT/SIGTERM (pause, resume and polite stop,
/// as the original project's scripts did) and asking for our parent's pid.
/// Signal numbers differ between Linux and macOS.
/// </summary>
public static partial class Posix
{
    public static int SigKill => 9;

    public static int SigInt => 2;

    public static int SigTerm => 15;

    public static int SigStop => OperatingSystem.IsMacOS() ? 17 : 19;

    public static int SigCont => OperatingSystem.IsMacOS() ? 19 : 18;

    /// <summary>Sends a signal; false if the process does not exist (or the OS is not POSIX).</summary>
    public static bool Signal(int pid, int signal)
    {
        if (OperatingSystem.IsWindows())
        {
            return false;
        }

        return Kill(pid, signal) == 0;
    }

    /// <summary>True while a process with this pid exists.</summary>
    public static bool Exists(int pid) => !OperatingSystem.IsWindows() && Kill(pid, 0) == 0;

    public static int ParentPid() => OperatingSystem.IsWindows() ? -1 : GetParentPid();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "getppid")]
    private static partial int GetParentPid();
}

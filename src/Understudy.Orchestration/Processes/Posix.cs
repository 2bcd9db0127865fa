using System.Globalization;
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

    /// <summary>
    /// What to start a child through so that a SIGINT sent to it reaches its Ctrl+C handling: `env --default-signal=INT`
    /// when this process ignores SIGINT, else nothing. A process that a non-interactive shell starts in the background
    /// (`dotnet test &amp;` in a script, nohup) ignores SIGINT; its children inherit that and .NET keeps it, so their Ctrl+C
    /// handling never runs (a test that interrupted `client read --follow` so waited 30 s for an exit that never came).
    /// </summary>
    public static IReadOnlyList<string> SigIntRestoringPrefix() => IgnoresSigInt() ? ["env", "--default-signal=INT"] : [];

    /// <summary>True when this process (or process <paramref name="pid"/>) ignores SIGINT (Linux: its bit in the SigIgn mask of /proc/PID/status).</summary>
    public static bool IgnoresSigInt(int? pid = null)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        string? mask;
        try
        {
            mask = File.ReadLines($"/proc/{(pid is { } p ? p.ToString(CultureInfo.InvariantCulture) : "self")}/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false; // exited: it ignores nothing any more
        }

        return mask is not null && (ulong.Parse(mask["SigIgn:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture) & (1UL << (SigInt - 1))) != 0;
    }

    public static int ParentPid() => OperatingSystem.IsWindows() ? -1 : GetParentPid();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "getppid")]
    private static partial int GetParentPid();
}

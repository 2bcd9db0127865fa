namespace Understudy.IntegrationTests;

/// <summary>What Linux's /proc says about a process: whether it has exited, or is really frozen by SIGSTOP.</summary>
internal static class ProcFs
{
    /// <summary>The state letter of a process or thread (R, S, D, T, t, Z, X...), or "gone".</summary>
    public static string State(int pid) => StateAt($"/proc/{pid}/stat");

    /// <summary>Exited: no such process, or a zombie waiting to be reaped (it runs nothing and holds no port).</summary>
    public static bool Gone(int pid) => State(pid) is "Z" or "X" or "gone";

    /// <summary>
    /// Every thread of the process is stopped. kill(SIGSTOP) returns before the stop takes effect: threads already
    /// running carry on until the stop reaches them, which on a busy machine can take a while.
    /// </summary>
    public static bool Stopped(int pid)
    {
        try
        {
            var threads = Directory.GetDirectories($"/proc/{pid}/task");
            return threads.Length > 0 && threads.All(t => StateAt(Path.Combine(t, "stat")) is "T" or "t" or "gone");
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string StateAt(string statPath)
    {
        try
        {
            // "pid (name) S ...": the state follows the last ')' (the name may hold spaces and parentheses).
            var stat = File.ReadAllText(statPath);
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "gone";
        }
    }
}

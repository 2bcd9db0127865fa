using System.Diagnostics;

namespace Understudy.Orchestration.Processes;

/// <summary>Runs a short system command (such as `ip netns list`) to its end: for setting up and checking the machine, not for the cluster's own processes.</summary>
public static class ExternalCommand
{
    /// <summary>The exit code and everything it printed (stdout, then stderr); -1 and the reason when it cannot be started at all.</summary>
    public static (int Code, string Output) Run(params string[] command)
    {
        try
        {
            var info = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in command.Skip(1))
            {
                info.ArgumentList.Add(a);
            }

            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}

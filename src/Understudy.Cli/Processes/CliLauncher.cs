using System.Diagnostics;

namespace Understudy.Cli.Processes;

/// <summary>Starts another `understudy` process the same way this one was started (apphost or `dotnet understudy.dll`).</summary>
internal static class CliLauncher
{
    public static ProcessStartInfo StartInfo(IEnumerable<string> arguments)
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which executable is running");
        var info = new ProcessStartInfo(host)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
        };
        if (string.Equals(Path.GetFileNameWithoutExtension(host), "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            info.ArgumentList.Add(typeof(CliLauncher).Assembly.Location);
        }

        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return info;
    }
}

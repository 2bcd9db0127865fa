using System.Diagnostics;
using System.Reflection;

namespace Understudy.Cli.Processes;

/// <summary>
/// Starts another `understudy` process: through the same apphost when this process is the CLI started that
/// way, else as `dotnet understudy.dll` (the CLI run by `dotnet`, or hosted inside a test process).
/// </summary>
internal static class CliLauncher
{
    /// <summary>
    /// As <see cref="StartInfo(IEnumerable{string})"/>, run through <paramref name="prefix"/> (for example
    /// `ip netns exec NAME`, which execs the command so the child keeps this process as its parent).
    /// </summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> arguments, IReadOnlyList<string> prefix)
    {
        var plain = StartInfo(arguments);
        if (prefix.Count == 0)
        {
            return plain;
        }

        var wrapped = new ProcessStartInfo(prefix[0])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var p in prefix.Skip(1))
        {
            wrapped.ArgumentList.Add(p);
        }

        wrapped.ArgumentList.Add(plain.FileName);
        foreach (var a in plain.ArgumentList)
        {
            wrapped.ArgumentList.Add(a);
        }

        return wrapped;
    }

    public static ProcessStartInfo StartInfo(IEnumerable<string> arguments)
    {
        var cli = typeof(CliLauncher).Assembly;
        var current = Environment.ProcessPath ?? "dotnet";
        var isCliApphost = Assembly.GetEntryAssembly() == cli &&
            !string.Equals(Path.GetFileNameWithoutExtension(current), "dotnet", StringComparison.OrdinalIgnoreCase);
        var info = new ProcessStartInfo(isCliApphost ? current : DotnetHost(current))
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
        };
        if (!isCliApphost)
        {
            info.ArgumentList.Add(cli.Location);
        }

        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return info;
    }

    private static string DotnetHost(string current)
    {
        if (string.Equals(Path.GetFileNameWithoutExtension(current), "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            return current;
        }

        // Test hosts and `dotnet test` set DOTNET_HOST_PATH to the muxer that started them.
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
    }
}

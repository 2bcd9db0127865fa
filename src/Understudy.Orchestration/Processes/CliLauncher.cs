using System.Diagnostics;
using System.Reflection;

namespace Understudy.Orchestration.Processes;

/// <summary>
/// Starts an `understudy` process. Which `understudy`, first match wins:
/// <list type="number">
/// <item>this process, when it is the CLI (through the same apphost, or as `dotnet understudy.dll`);</item>
/// <item>the file named by <see cref="PathVariable"/> (an apphost, or a dll run by `dotnet`);</item>
/// <item><c>understudy.dll</c> next to this library (the CLI's own output folder, the .NET tool package);</item>
/// <item><c>cli/understudy.dll</c> under the running program's folder: the copy of the CLI's whole output that the
/// process-level test projects get at build time (tests/UnderstudyCli.targets).</item>
/// </list>
/// </summary>
public static class CliLauncher
{
    /// <summary>Environment variable naming the `understudy` executable or dll to start, overriding the search.</summary>
    public const string PathVariable = "UNDERSTUDY_CLI";

    /// <summary>The CLI's assembly name (its dll is understudy.dll, its apphost understudy).</summary>
    public const string AssemblyName = "understudy";

    /// <summary>The folder under the program's output where tests/UnderstudyCli.targets copies the CLI.</summary>
    public const string CopiedFolder = "cli";

    /// <summary>
    /// As <see cref="StartInfo(IEnumerable{string})"/>, run through <paramref name="prefix"/> (for example
    /// `ip netns exec NAME`, which execs the command so the child keeps this process as its parent).
    /// </summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> arguments, IReadOnlyList<string> prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
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

        // The prefix execs the command, which inherits what is set here.
        VerbRuntime.Apply(wrapped, VerbOf(plain));

        return wrapped;
    }

    /// <summary>
    /// How to start `understudy ARGUMENTS`, with standard output and error redirected, and the runtime settings of
    /// its verb (<see cref="VerbRuntime"/>).
    /// </summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var current = Environment.ProcessPath ?? "dotnet";
        var (path, apphost) = Locate(current);
        var info = new ProcessStartInfo(apphost ? path : DotnetHost(current))
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
        };
        if (!apphost)
        {
            info.ArgumentList.Add(path);
        }

        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        VerbRuntime.Apply(info, VerbOf(info));
        return info;
    }

    /// <summary>The `understudy` this process would start: an apphost to run directly, or a dll to run with `dotnet`.</summary>
    public static (string Path, bool Apphost) Locate() => Locate(Environment.ProcessPath ?? "dotnet");

    private static (string Path, bool Apphost) Locate(string current)
    {
        var runByDotnet = IsDotnet(current);
        if (Assembly.GetEntryAssembly() is { } entry && entry.GetName().Name == AssemblyName)
        {
            // The CLI starting its own children: the same apphost, or the same dll under `dotnet`.
            return runByDotnet ? (entry.Location, false) : (current, true);
        }

        if (Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } named)
        {
            var full = Path.GetFullPath(named);
            if (!File.Exists(full))
            {
                throw new FileNotFoundException($"{PathVariable} names {full}, which does not exist", full);
            }

            return (full, !full.EndsWith(".dll", StringComparison.OrdinalIgnoreCase));
        }

        string[] candidates =
        [
            Path.Combine(Path.GetDirectoryName(typeof(CliLauncher).Assembly.Location) ?? AppContext.BaseDirectory, AssemblyName + ".dll"),
            Path.Combine(AppContext.BaseDirectory, CopiedFolder, AssemblyName + ".dll"),
        ];
        return candidates.FirstOrDefault(File.Exists) is { } found
            ? (found, false)
            : throw new FileNotFoundException(
                $"cannot find the `understudy` CLI to start: looked for {string.Join(" and ", candidates)}. Set {PathVariable} to its path, " +
                "or import tests/UnderstudyCli.targets into the project that runs this code (it copies the CLI's build output into cli/).");
    }

    // The verb: the first argument, after the dll when the CLI is run by `dotnet`.
    private static string? VerbOf(ProcessStartInfo plain)
    {
        var first = IsDotnet(plain.FileName) ? 1 : 0;
        return plain.ArgumentList.Count > first ? plain.ArgumentList[first] : null;
    }

    private static bool IsDotnet(string path) =>
        string.Equals(Path.GetFileNameWithoutExtension(path), "dotnet", StringComparison.OrdinalIgnoreCase);

    private static string DotnetHost(string current)
    {
        if (IsDotnet(current))
        {
            return current;
        }

        // Test hosts and `dotnet test` set DOTNET_HOST_PATH to the muxer that started them.
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
    }
}

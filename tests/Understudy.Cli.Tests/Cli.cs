using System.Diagnostics;
using Understudy.Orchestration.Clusters;

namespace Understudy.Cli.Tests;

/// <summary>Runs `dotnet understudy.dll ARGS` and collects what it printed; kills it (and its children) if it overstays.</summary>
internal static class Cli
{
    /// <summary>The CLI built alongside these tests and copied into cli/ (UNDERSTUDY_CLI_DLL overrides, e.g. artifacts/cli/understudy.dll).</summary>
    public static string Dll { get; } = Locate();

    public static ProcessStartInfo StartInfo(string workingDirectory, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(DotnetHost())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workingDirectory,
        };
        info.ArgumentList.Add(Dll);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        // A terminal-free, colour-free run, as in CI.
        info.Environment["NO_COLOR"] = "1";
        info.Environment.Remove("UNDERSTUDY_CLIENT__MONITOR");
        return info;
    }

    /// <summary>Runs to the end (at most <paramref name="timeout"/>); exit code, stdout and stderr lines, and how long it took.</summary>
    public static async Task<Result> RunAsync(string workingDirectory, IReadOnlyList<string> arguments, TimeSpan? timeout = null)
    {
        using var process = new Process { StartInfo = StartInfo(workingDirectory, arguments) };
        var watch = Stopwatch.StartNew();
        process.Start();
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`understudy {string.Join(' ', arguments)}` did not exit within {(timeout ?? TimeSpan.FromSeconds(30)).TotalSeconds:0} s");
        }

        return new Result(process.ExitCode, Lines(await stdout), Lines(await stderr), watch.Elapsed);
    }

    /// <summary>A port nothing listens on now and never handed out before in this test process (<see cref="PortReservations"/>).</summary>
    public static int FreePort() => PortReservations.Take(1)[0];

    /// <summary>A base port for `up`: it and the ports below it for each server, and each + 100 (their HTTP), all free now and reserved together.</summary>
    public static int FreeBasePort(int servers) => PortReservations.TakeBase(servers);

    public static bool PortIsFree(int port) => PortReservations.IsFree(port);

    /// <summary>
    /// Whether no socket listens on <paramref name="port"/> (any address, IPv4 or IPv6): what a refused command must
    /// leave behind. Binding the port to find out is not the same question: under a parallel test run another
    /// process's outgoing connection may hold the same number as its own local port, which says nothing about the
    /// command (a CI run failed so).
    /// </summary>
    public static bool NothingListensOn(int port)
    {
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table))
            {
                continue;
            }

            foreach (var row in File.ReadLines(table).Skip(1))
            {
                // "  sl  local_address rem_address   st ...": local is HEXADDR:HEXPORT, state 0A is LISTEN.
                var fields = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length > 3 && fields[3] == "0A" &&
                    int.Parse(fields[1][(fields[1].LastIndexOf(':') + 1)..], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) == port)
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>Processes whose command line mentions <paramref name="text"/> (a test's own temp folder): what it left running.</summary>
    public static IReadOnlyList<int> ProcessesMentioning(string text)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal) && cmdline.Contains("understudy", StringComparison.Ordinal))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    /// <summary>Polls until <paramref name="condition"/> holds or the deadline passes; false then.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(50, TestContext.Current.CancellationToken);
        }

        return condition();
    }

    private static List<string> Lines(string text) => [.. text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0)];

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    private static string Locate()
    {
        if (Environment.GetEnvironmentVariable("UNDERSTUDY_CLI_DLL") is { Length: > 0 } given)
        {
            return Path.GetFullPath(given);
        }

        var copied = Path.Combine(AppContext.BaseDirectory, "cli", "understudy.dll");
        return File.Exists(copied)
            ? copied
            : throw new FileNotFoundException($"the CLI is not at {copied}: tests/UnderstudyCli.targets copies it there when this project builds (or set UNDERSTUDY_CLI_DLL)");
    }

    internal sealed record Result(int ExitCode, IReadOnlyList<string> Output, IReadOnlyList<string> Errors, TimeSpan Took)
    {
        public string Describe() => $"exit {ExitCode} after {Took.TotalSeconds:0.0} s\nstdout:\n{string.Join('\n', Output)}\nstderr:\n{string.Join('\n', Errors)}";
    }
}

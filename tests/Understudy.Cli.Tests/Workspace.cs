namespace Understudy.Cli.Tests;

/// <summary>
/// A temp folder for one test: `{data}` names a folder inside it that must never be created, `{file}` an existing
/// file (so `{file}/sub` is a path whose parent is a file). Deleted on dispose, after anything left running is killed.
/// </summary>
internal sealed class Workspace : IDisposable
{
    public Workspace()
    {
        Root = Directory.CreateTempSubdirectory("understudy-cli-tests-").FullName;
        Data = Path.Combine(Root, "data-never-created");
        File = Path.Combine(Root, "a-file");
        System.IO.File.WriteAllText(File, "not a folder\n");
    }

    public string Root { get; }

    public string Data { get; }

    public string File { get; }

    /// <summary>The row's words with {data}, {file}, {base} (a base port for `up`) and {portN} (free ports, the same N the same port) filled in.</summary>
    public string[] Expand(string commandLine, Dictionary<string, int> ports) =>
        [.. commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w =>
        {
            w = w.Replace("{data}", Data, StringComparison.Ordinal).Replace("{file}", File, StringComparison.Ordinal);
            if (w.Contains("{base}", StringComparison.Ordinal))
            {
                if (!ports.TryGetValue("{base}", out var base1))
                {
                    ports["{base}"] = base1 = Cli.FreeBasePort(servers: 3);
                }

                w = w.Replace("{base}", base1.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
            }

            foreach (var n in Enumerable.Range(1, 9))
            {
                var key = $"{{port{n}}}";
                if (w.Contains(key, StringComparison.Ordinal))
                {
                    if (!ports.TryGetValue(key, out var port))
                    {
                        ports[key] = port = Cli.FreePort();
                    }

                    w = w.Replace(key, port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
                }
            }

            return w;
        })];

    /// <summary>Every entry of the folder, to show nothing was written.</summary>
    public IReadOnlyList<string> Entries() => [.. Directory.EnumerateFileSystemEntries(Root, "*", SearchOption.AllDirectories).Order()];

    public void Dispose()
    {
        foreach (var pid in Cli.ProcessesMentioning(Root))
        {
            try
            {
                using var p = System.Diagnostics.Process.GetProcessById(pid);
                p.Kill(entireProcessTree: true);
            }
            catch (ArgumentException)
            {
            }
            catch (InvalidOperationException)
            {
            }
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A child on its way out still holds a file; the OS cleans temp folders.
        }
    }
}

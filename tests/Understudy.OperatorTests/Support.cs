using System.Diagnostics;

// Each test runs a whole cluster of processes on a 2-core machine with 300 ms failure timeouts: one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Understudy.OperatorTests;

/// <summary>Polling with a deadline: the message names the phase and what was expected and seen.</summary>
internal static class Wait
{
    public static async Task UntilAsync(string phase, Func<bool> condition, Func<string> seen, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"{phase}: not reached within {limit.TotalSeconds:0} s; saw {seen()}");
            }

            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }

    public static async Task<T> ForAsync<T>(string phase, Func<Task<T?>> probe, Func<T?, bool> condition, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        T? last = default;
        while (true)
        {
            last = await probe();
            if (condition(last))
            {
                return last!;
            }

            if (watch.Elapsed > limit)
            {
                throw new TimeoutException($"{phase}: not reached within {limit.TotalSeconds:0} s; last saw {last?.ToString() ?? "nothing"}");
            }

            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }
}

/// <summary>Where tests leave files worth keeping (screenshots, measured pauses): the test output folder.</summary>
internal static class Artifacts
{
    public static string Folder
    {
        get
        {
            var folder = Path.Combine(AppContext.BaseDirectory, "artifacts");
            Directory.CreateDirectory(folder);
            return folder;
        }
    }

    /// <summary>The repository root (the folder holding Understudy.slnx), or null when run elsewhere.</summary>
    public static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Understudy.slnx")))
            {
                return dir.FullName;
            }
        }

        return null;
    }
}

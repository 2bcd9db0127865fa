using Understudy.Orchestration.Polling;

// Each test runs a whole cluster of processes on a 2-core machine with 300 ms failure timeouts: one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Understudy.OperatorTests;

/// <summary>
/// The tests' side of <see cref="Poll"/> (Understudy.Orchestration): the phase first, the test's cancellation token,
/// and the default deadline; the timeout message names the phase and what was last seen.
/// </summary>
internal static class Wait
{
    public static Task UntilAsync(string phase, Func<bool> condition, Func<string> seen, TimeSpan? timeout = null) =>
        Poll.UntilAsync(condition, timeout ?? Poll.DefaultTimeout, phase, () => $"saw {seen()}", TestContext.Current.CancellationToken);

    public static async Task<T> ForAsync<T>(string phase, Func<Task<T?>> probe, Func<T?, bool> condition, TimeSpan? timeout = null) =>
        (await Poll.ForAsync(_ => probe(), condition, timeout ?? Poll.DefaultTimeout, phase, last => $"last saw {last?.ToString() ?? "nothing"}", TestContext.Current.CancellationToken))!;
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

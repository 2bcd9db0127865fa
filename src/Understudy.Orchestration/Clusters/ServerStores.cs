namespace Understudy.Orchestration.Clusters;

/// <summary>
/// The servers' stores of a <see cref="LocalCluster"/> (their log segments, snapshots and epochs), one folder per server
/// under its data folder. A bench's run takes hundreds of MB of them, and a few dozen runs filled a disk; once a run has
/// passed they tell nothing its result, plots and the processes' logs do not, so the benches delete them then, unless
/// asked to keep them. A run that failed keeps everything.
/// </summary>
public static class ServerStores
{
    /// <summary>The folder a local cluster gives the server on <paramref name="port"/>, under its data folder.</summary>
    public static string FolderOf(string dataFolder, int port) => Path.Combine(dataFolder, Prefix + port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// After a run that passed, with its cluster stopped: deletes every server's store under <paramref name="dataFolder"/>
    /// (the processes' logs and the monitor's folder stay); returns the bytes freed. Nothing when <paramref name="keep"/>.
    /// </summary>
    public static long DropAfterPassing(string dataFolder, bool passed, bool keep)
    {
        if (keep || !passed || !Directory.Exists(dataFolder))
        {
            return 0;
        }

        long freed = 0;
        foreach (var store in Directory.EnumerateDirectories(dataFolder, Prefix + "*"))
        {
            freed += new DirectoryInfo(store).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
            Directory.Delete(store, recursive: true);
        }

        return freed;
    }

    private const string Prefix = "server-";
}

using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>The outcome of a compare-and-set: whether it was written, and the configuration now stored.</summary>
public readonly record struct ConfigWriteResult(bool Committed, ClusterConfig Current);

/// <summary>
/// Where the monitor keeps the cluster configuration. Every change is a compare-and-set on the version
/// and is durable before the call completes, so a restarted monitor never goes back to an older epoch.
/// One implementation is a file written atomically; a replicated store (several monitors) can come later.
/// </summary>
public interface IConfigurationStore
{
    /// <summary>The stored configuration, or <see cref="ClusterConfig.Initial"/> when there is none yet.</summary>
    ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken);

    /// <summary>Replaces the configuration if its version is still <paramref name="expectedVersion"/>.</summary>
    ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken);
}

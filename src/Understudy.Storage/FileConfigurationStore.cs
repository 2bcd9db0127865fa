using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>
/// The monitor's configuration store: one human-readable <c>cluster.json</c> in a data folder the monitor
/// holds locked while it runs. Every compare-and-set is durable before it completes (temporary file, fsync,
/// rename, folder fsync), the file carries a checksum so damage is an error rather than a silent reset to
/// epoch 0, and the store refuses any write that would take the epoch back.
/// </summary>
/// <remarks>
/// The file is read once, at <see cref="Open"/>: the folder lock makes this process its only writer, so
/// memory and disk agree afterwards. A failed write leaves the store stopped (every later call throws the
/// same <see cref="StorageException"/>), because after a failed rename or folder fsync the monitor cannot
/// know which version a restart would read; a restart reads it.
/// </remarks>
public sealed class FileConfigurationStore : IConfigurationStore, IDisposable
{
    /// <summary>The file name inside the data folder.</summary>
    public const string FileName = "cluster.json";

    private readonly string _directory;
    private readonly string _path;
    private readonly ILogger _logger;
    private readonly FolderLock _folderLock;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ClusterConfig _current;
    private StorageException? _fault;
    private bool _disposed;

    private FileConfigurationStore(string directory, ILogger logger, FolderLock folderLock, ClusterConfig current)
    {
        _directory = directory;
        _path = Path.Combine(directory, FileName);
        _logger = logger;
        _folderLock = folderLock;
        _current = current;
    }

    /// <summary>The data folder (full path).</summary>
    public string Directory => _directory;

    /// <summary>The stored configuration, as of the last completed write.</summary>
    public ClusterConfig Current => Volatile.Read(ref _current);

    /// <summary>
    /// Opens the store in <paramref name="directory"/> (created if missing), locks the folder against another
    /// monitor, and reads <c>cluster.json</c> if there is one.
    /// </summary>
    /// <exception cref="StorageException">The folder is in use or unreadable, or the file is damaged; the message says how to fix it.</exception>
    public static FileConfigurationStore Open(string directory, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        logger ??= NullLogger.Instance;
        var full = Path.GetFullPath(directory);
        var path = Path.Combine(full, FileName);
        try
        {
            System.IO.Directory.CreateDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, "creating the monitor's data folder", full);
        }

        var folderLock = FolderLock.Acquire(full, "monitor");
        try
        {
            if (DiskFiles.RemoveStaleTemp(full, FileName) is { } stale)
            {
                // A crash between writing the new version and renaming it: that version was never stored.
                logger.StaleTempRemoved(stale);
            }

            var bytes = DiskFiles.ReadIfExists(path);
            ClusterConfig current;
            if (bytes is null)
            {
                current = ClusterConfig.Initial;
                logger.ConfigMissing(path);
            }
            else
            {
                try
                {
                    current = ConfigurationFile.Deserialize(bytes);
                }
                catch (FormatException e)
                {
                    throw new StorageException(
                        $"Configuration file '{path}' is damaged ({e.Message}). Refusing to start from epoch 0, which could elect a second primary: restore the file from a backup, or stop every server and delete it to form a new cluster.", e);
                }

                logger.ConfigLoaded(path, current);
            }

            return new FileConfigurationStore(full, logger, folderLock, current);
        }
        catch (Exception e)
        {
            folderLock.Dispose();
            if (e is IOException or UnauthorizedAccessException)
            {
                throw DiskErrors.Describe(e, "reading the cluster configuration", path);
            }

            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        return ValueTask.FromResult(Current);
    }

    /// <inheritdoc />
    /// <exception cref="ArgumentException"><paramref name="next"/> does not raise the version, or lowers the epoch.</exception>
    /// <exception cref="StorageException">The write failed; the store is stopped.</exception>
    public async ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(next);
        await _gate.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_fault is { } fault)
            {
                throw fault;
            }

            var current = _current;
            if (current.Version != expectedVersion)
            {
                _logger.ConfigCasRefused(expectedVersion, current.Version);
                return new ConfigWriteResult(false, current);
            }

            if (next.Version <= current.Version)
            {
                throw new ArgumentException($"the new configuration's version {next.Version} must be above the stored {current.Version}", nameof(next));
            }

            if (next.Epoch < current.Epoch)
            {
                throw new ArgumentException($"the new configuration's epoch {next.Epoch} is below the stored {current.Epoch}: the epoch never goes back", nameof(next));
            }

            var bytes = ConfigurationFile.Serialize(next);

            // fsync takes milliseconds: keep it off the monitor's loop. Cancellation can stop the write only
            // before it starts, so a cancelled call has written nothing.
            try
            {
                await Task.Run(() => DiskFiles.WriteAtomically(_directory, FileName, bytes), cancellationToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _fault = DiskErrors.Describe(e, "storing the cluster configuration", _path);
                _logger.ConfigStoreFaulted(e, _directory, _fault.Message);
                throw _fault;
            }

            Volatile.Write(ref _current, next);
            _logger.ConfigStored(next);
            return new ConfigWriteResult(true, next);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Releases the folder lock. Waits for a write in progress to finish first.</summary>
    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed)
            {
                return;
            }

            Volatile.Write(ref _disposed, true);
            _folderLock.Dispose();
        }
        finally
        {
            _gate.Release();
        }
    }
}

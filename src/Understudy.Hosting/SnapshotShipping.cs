using Microsoft.Extensions.Logging;
using Understudy.Storage;
using Understudy.Storage.Snapshots;

namespace Understudy.Hosting;

/// <summary>
/// The snapshot side of <see cref="Understudy.Core.Replication.IServerEnvironment"/> over a <see cref="SnapshotStore"/>:
/// snapshot files streamed to backups by offset (<see cref="SnapshotSource"/>) and a snapshot received from the primary
/// written chunk by chunk (<see cref="SnapshotInstaller"/>). Neither side holds a whole snapshot in memory; only a
/// completed install is read back whole, once, to restore the state from it (as a restart does). A completed install is
/// published by the log's reset (<see cref="DurableLog.InstallSnapshot"/>), which orders the two for a crash.
/// </summary>
/// <remarks>Used on the server's loop only.</remarks>
internal sealed class SnapshotShipping(SnapshotStore store, ILogger logger) : IDisposable
{
    // Open snapshot files being sent, by index: one per snapshot, shared by every backup receiving it. A newer
    // snapshot replaces older ones (the store keeps two files; a transfer of a pruned one starts over).
    private readonly Dictionary<long, SnapshotSource> _sources = [];
    private SnapshotInstaller? _installer;

    // Received whole and verified, waiting for the log reset that installs it (Install).
    private SnapshotInstaller? _verified;

    public long Length(long index) => Source(index)?.Length ?? 0;

    public int Read(long index, long offset, Span<byte> destination)
    {
        if (Source(index) is not { } source)
        {
            return 0;
        }

        try
        {
            return source.Read(offset, destination);
        }
        catch (Exception e) when (e is StorageException or IOException)
        {
            LogMessages.SnapshotUnreadable(logger, index, e.Message);
            Close(index);
            return 0;
        }
    }

    /// <exception cref="StorageException">The disk failed.</exception>
    public long BeginInstall(long index, long epoch, long totalLength)
    {
        if (_installer is { } current && current.Index == index && current.Epoch == epoch && current.TotalLength == totalLength)
        {
            return current.ReceivedLength;
        }

        _installer?.Dispose();
        _installer = null;
        _verified = null;
        _installer = store.BeginInstall(index, epoch, totalLength);
        return _installer.ReceivedLength;
    }

    /// <exception cref="StorageException">The disk is full or failed.</exception>
    public void Write(long index, long offset, ReadOnlySpan<byte> chunk)
    {
        if (_installer is not { } installer || installer.Index != index)
        {
            throw new InvalidOperationException($"a chunk of snapshot {index} arrived with no install of it under way");
        }

        installer.Write(offset, chunk);
    }

    /// <summary>
    /// Checks the received file and makes it durable, then reads its state back; null (and logged) when it is damaged.
    /// It is not published yet: <see cref="Install"/> does that with the log's reset.
    /// </summary>
    public ReadOnlyMemory<byte>? Complete(long index)
    {
        var installer = _installer;
        _installer = null;
        _verified = null;
        if (installer is null || installer.Index != index)
        {
            installer?.Dispose();
            return null;
        }

        StoredSnapshot loaded;
        try
        {
            installer.Verify();
            loaded = installer.ReadVerified();
        }
        catch (StorageException e)
        {
            LogMessages.SnapshotInstallRefused(logger, index, e.Message);
            installer.Dispose();
            return null;
        }

        _verified = installer;
        return loaded.State;
    }

    /// <summary>
    /// Installs the snapshot <see cref="Complete"/> just verified: <paramref name="log"/> replaces itself by a log that
    /// continues after <paramref name="afterIndex"/> (of <paramref name="epoch"/>) and publishes the snapshot, in its
    /// crash-safe order, ahead of anything appended later.
    /// </summary>
    /// <exception cref="InvalidOperationException">No verified snapshot is waiting.</exception>
    public void Install(DurableLog log, long afterIndex, long epoch)
    {
        var verified = _verified ?? throw new InvalidOperationException($"the log was reset after {afterIndex} with no received snapshot waiting to be installed");
        _verified = null;
        log.InstallSnapshot(verified, afterIndex + 1, epoch);
        LogMessages.SnapshotInstalledFromPrimary(logger, verified.Index, afterIndex);
    }

    public void Dispose()
    {
        _installer?.Dispose();
        _installer = null;
        _verified = null;
        foreach (var source in _sources.Values)
        {
            source.Dispose();
        }

        _sources.Clear();
    }

    private SnapshotSource? Source(long index)
    {
        if (_sources.TryGetValue(index, out var open))
        {
            return open;
        }

        SnapshotSource source;
        try
        {
            source = store.OpenRead(index);
        }
        catch (StorageException e)
        {
            LogMessages.SnapshotUnreadable(logger, index, e.Message);
            return null;
        }

        // At most as many open as the store keeps: an older file is pruned anyway, and its transfers start over.
        foreach (var older in _sources.Keys.Order().SkipLast(SnapshotStore.Kept - 1).ToList())
        {
            Close(older);
        }

        _sources[index] = source;
        return source;
    }

    private void Close(long index)
    {
        if (_sources.Remove(index, out var source))
        {
            source.Dispose();
        }
    }
}

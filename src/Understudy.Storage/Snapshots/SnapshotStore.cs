using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage.Snapshots;

/// <summary>A snapshot read back whole: the state after applying entries 1..<see cref="Index"/>.</summary>
/// <param name="Index">The last log index the state includes.</param>
/// <param name="Epoch">The epoch of the entry at <see cref="Index"/>.</param>
/// <param name="State">The serialized state, as given to <see cref="SnapshotStore.Save"/>.</param>
public sealed record StoredSnapshot(long Index, long Epoch, ReadOnlyMemory<byte> State);

/// <summary>What is known about a snapshot file without reading its body, for metrics.</summary>
/// <param name="Index">The last log index the state includes.</param>
/// <param name="Epoch">The epoch of that entry (0 when only the file name was looked at).</param>
/// <param name="Bytes">Size of the file.</param>
/// <param name="Time">When it was written (UTC).</param>
public readonly record struct SnapshotInfo(long Index, long Epoch, long Bytes, DateTimeOffset Time);

/// <summary>
/// A server's snapshots, one file each in one folder: the state machine's state (with the deduplication table)
/// after applying the log through an index, so the log below it can be removed and a restart reads only the tail.
/// </summary>
/// <remarks>
/// <para>
/// Every file is written whole or not at all (temporary file, fsync, rename, folder fsync) and carries
/// checksums of its header and body (<see cref="SnapshotFile"/>). The newest <see cref="Kept"/> are kept, so when
/// the newest turns out damaged <see cref="TryLoadLatest"/> falls back to the one before (logging why); a caller
/// that compacts the log should therefore keep the entries after the older of the two.
/// </para>
/// <para>
/// A backup too far behind for the log receives a snapshot in chunks: the sender streams the file with
/// <see cref="OpenRead"/> and the receiver writes it through <see cref="BeginInstall"/>, which can resume a
/// transfer a broken connection cut short and publishes the file only once its checksums hold.
/// </para>
/// Thread-safe: saves, installs and pruning are serialized; reads may run alongside.
/// </remarks>
public sealed class SnapshotStore
{
    /// <summary>How many snapshots are kept: the newest, and one to fall back on should it be damaged.</summary>
    public const int Kept = 2;

    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private SnapshotInfo? _latest;

    /// <summary>Opens (creating if needed) the snapshot folder and removes temporary files a crash left behind.</summary>
    /// <exception cref="StorageException">The folder cannot be created or read.</exception>
    public SnapshotStore(string directory, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        _logger = logger ?? NullLogger.Instance;
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            foreach (var temp in System.IO.Directory.EnumerateFiles(Directory, "*" + SnapshotFile.TempSuffix))
            {
                File.Delete(temp);
                _logger.SnapshotLeftoverRemoved(temp, "a save interrupted before its rename");
            }

            var indices = Indices();
            var newest = indices.Count == 0 ? 0 : indices[^1];
            if (newest > 0)
            {
                var file = new FileInfo(PathFor(newest));
                _latest = new SnapshotInfo(newest, 0, file.Length, file.LastWriteTimeUtc);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, "opening the snapshot folder", Directory);
        }
    }

    /// <summary>The folder (full path).</summary>
    public string Directory { get; }

    /// <summary>The newest snapshot on disk (as last saved, installed or found at open), or null.</summary>
    public SnapshotInfo? Latest
    {
        get
        {
            lock (_lock)
            {
                return _latest;
            }
        }
    }

    /// <summary>Indices of the snapshot files on disk, oldest first (not checked: see <see cref="TryLoadLatest"/>).</summary>
    public IReadOnlyList<long> Indices()
    {
        var indices = new List<long>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*" + SnapshotFile.Extension))
        {
            if (SnapshotFile.TryParseName(Path.GetFileName(file), out var index))
            {
                indices.Add(index);
            }
        }

        indices.Sort();
        return indices;
    }

    /// <summary>
    /// Writes the snapshot at <paramref name="index"/> durably and atomically, then deletes all but the newest
    /// <see cref="Kept"/>. If it fails, the snapshots already saved are untouched.
    /// </summary>
    /// <exception cref="StorageException">The disk is full or failed; one line saying what to do.</exception>
    public SnapshotInfo Save(long index, long epoch, ReadOnlySpan<byte> state)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(index, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        var target = PathFor(index);
        var temp = target + SnapshotFile.TempSuffix;
        lock (_lock)
        {
            try
            {
                Span<byte> header = stackalloc byte[SnapshotFile.HeaderSize];
                SnapshotFile.WriteHeader(header, index, epoch, state.Length, Crc32C.Compute(state));
                using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
                {
                    RandomAccess.Write(handle, header, 0);
                    RandomAccess.Write(handle, state, SnapshotFile.HeaderSize);
                    RandomAccess.FlushToDisk(handle);
                }

                File.Move(temp, target, overwrite: true);
                DiskFiles.FsyncDirectory(Directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                TryDelete(temp);
                throw DiskErrors.Describe(e, $"saving snapshot {index}", target);
            }

            var info = new SnapshotInfo(index, epoch, SnapshotFile.HeaderSize + state.Length, DateTimeOffset.UtcNow);
            Published(info);
            _logger.SnapshotSaved(index, epoch, info.Bytes, target);
            return info;
        }
    }

    /// <summary>
    /// The newest snapshot whose checksums hold, read whole; a torn or corrupt file is skipped with a logged
    /// reason and the one before it tried. Null when there is none.
    /// </summary>
    public StoredSnapshot? TryLoadLatest()
    {
        var indices = Indices();
        for (var i = indices.Count - 1; i >= 0; i--)
        {
            var path = PathFor(indices[i]);
            var snapshot = TryLoad(path, indices[i], out var reason);
            if (snapshot is null)
            {
                _logger.SnapshotRefused(path, reason);
                continue;
            }

            _logger.SnapshotLoaded(snapshot.Index, snapshot.Epoch, snapshot.State.Length, path);
            lock (_lock)
            {
                var file = new FileInfo(path);
                _latest = new SnapshotInfo(snapshot.Index, snapshot.Epoch, file.Length, file.LastWriteTimeUtc);
            }

            return snapshot;
        }

        return null;
    }

    /// <summary>
    /// Opens the snapshot file at <paramref name="index"/> for reading by offset, to send it in chunks: the
    /// receiver passes the same bytes to a <see cref="SnapshotInstaller"/>. The header is checked now; the body's
    /// checksum is checked by the receiver once it has everything.
    /// </summary>
    /// <exception cref="StorageException">The file is gone (a newer snapshot replaced it), unreadable or damaged.</exception>
    public SnapshotSource OpenRead(long index)
    {
        var path = PathFor(index);
        SafeFileHandle? handle = null;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var length = RandomAccess.GetLength(handle);
            Span<byte> header = stackalloc byte[SnapshotFile.HeaderSize];
            var read = SnapshotFile.ReadFully(handle, header, 0);
            if (SnapshotFile.CheckHeader(header[..read], length, out var parsed) is { } problem)
            {
                throw new StorageException($"Snapshot '{path}' cannot be sent: {problem}. A new snapshot must be taken.");
            }

            var source = new SnapshotSource(handle, parsed.Index, parsed.Epoch, length);
            handle = null;
            return source;
        }
        catch (FileNotFoundException e)
        {
            throw new StorageException($"Snapshot {index} is no longer on disk at '{path}' (a newer one replaced it): send the latest instead.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"reading snapshot {index}", path);
        }
        finally
        {
            handle?.Dispose();
        }
    }

    /// <summary>
    /// Starts (or resumes) receiving the snapshot file at <paramref name="index"/>, <paramref name="totalLength"/>
    /// bytes as <see cref="SnapshotSource.Length"/> gave them. A partial file left by an earlier attempt at the
    /// same snapshot is kept, so the sender resumes at <see cref="SnapshotInstaller.ReceivedLength"/>; partial files
    /// of other snapshots are deleted.
    /// </summary>
    /// <exception cref="StorageException">The disk failed.</exception>
    public SnapshotInstaller BeginInstall(long index, long epoch, long totalLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(index, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ArgumentOutOfRangeException.ThrowIfLessThan(totalLength, SnapshotFile.HeaderSize);
        var partial = PathFor(index) + SnapshotFile.PartialSuffix;
        try
        {
            foreach (var other in System.IO.Directory.EnumerateFiles(Directory, "*" + SnapshotFile.Extension + SnapshotFile.PartialSuffix))
            {
                if (other != partial)
                {
                    File.Delete(other);
                    _logger.SnapshotLeftoverRemoved(other, "an install of another snapshot, abandoned");
                }
            }

            var handle = File.OpenHandle(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            try
            {
                var received = RandomAccess.GetLength(handle);
                if (received > totalLength || !HeaderMatches(handle, received, index, epoch, totalLength))
                {
                    // Not the same snapshot (or not the same transfer): start again.
                    RandomAccess.SetLength(handle, 0);
                    received = 0;
                }

                _logger.SnapshotInstallStarted(index, epoch, totalLength, received);
                return new SnapshotInstaller(this, handle, partial, index, epoch, totalLength, received);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"installing snapshot {index}", partial);
        }
    }

    /// <summary>
    /// The snapshot at <paramref name="index"/>, read whole and checked (header, index, body checksum); null with the
    /// reason when it is missing, torn or damaged. For a server that has just installed it and restores its state.
    /// </summary>
    public StoredSnapshot? TryLoad(long index, out string reason) => TryLoad(PathFor(index), index, out reason);

    /// <summary>
    /// Publishes the received, verified file of snapshot <paramref name="index"/> that an install left under its partial
    /// name (<see cref="DurableLog.InstallSnapshot"/> was cut short after its log reset took effect). False with the
    /// reason when that file is missing or does not check.
    /// </summary>
    internal bool TryFinishInstall(long index, out string reason)
    {
        var partial = PathFor(index) + SnapshotFile.PartialSuffix;
        if (TryLoad(partial, index, out reason) is not { } received)
        {
            return false;
        }

        Publish(partial, index, received.Epoch, SnapshotFile.HeaderSize + received.State.Length);
        return true;
    }

    internal string PathFor(long index) => Path.Combine(Directory, SnapshotFile.FileNameFor(index));

    /// <summary>Renames a complete, checked install into place. Called by <see cref="SnapshotInstaller.Complete"/>.</summary>
    internal SnapshotInfo Publish(string partial, long index, long epoch, long bytes)
    {
        var target = PathFor(index);
        lock (_lock)
        {
            File.Move(partial, target, overwrite: true);
            DiskFiles.FsyncDirectory(Directory);
            var info = new SnapshotInfo(index, epoch, bytes, DateTimeOffset.UtcNow);
            Published(info);
            _logger.SnapshotInstalled(index, epoch, bytes, target);
            return info;
        }
    }

    private static bool HeaderMatches(SafeFileHandle handle, long received, long index, long epoch, long totalLength)
    {
        if (received < SnapshotFile.HeaderSize)
        {
            return true; // nothing to contradict yet
        }

        Span<byte> header = stackalloc byte[SnapshotFile.HeaderSize];
        var read = SnapshotFile.ReadFully(handle, header, 0);
        return SnapshotFile.CheckHeader(header[..read], totalLength, out var parsed) is null && parsed.Index == index && parsed.Epoch == epoch;
    }

    /// <summary>The snapshot file at <paramref name="path"/> (named for <paramref name="index"/>), read whole and checked; null with the reason when it is not sound.</summary>
    internal static StoredSnapshot? TryLoadFile(string path, long index, out string reason) => TryLoad(path, index, out reason);

    private static StoredSnapshot? TryLoad(string path, long index, out string reason)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            var length = RandomAccess.GetLength(handle);
            var header = new byte[SnapshotFile.HeaderSize];
            var read = SnapshotFile.ReadFully(handle, header, 0);
            if (SnapshotFile.CheckHeader(header.AsSpan(0, read), length, out var parsed) is { } problem)
            {
                reason = problem;
                return null;
            }

            if (parsed.Index != index)
            {
                reason = $"its header says index {parsed.Index} but its name says {index} (renamed by hand?)";
                return null;
            }

            if (parsed.BodyLength > Array.MaxLength)
            {
                reason = $"its state is {parsed.BodyLength} bytes, more than one buffer holds";
                return null;
            }

            var state = new byte[parsed.BodyLength];
            if (SnapshotFile.ReadFully(handle, state, SnapshotFile.HeaderSize) != state.Length)
            {
                reason = "the file ended before its state did (a torn write)";
                return null;
            }

            var crc = Crc32C.Compute(state);
            if (crc != parsed.BodyCrc)
            {
                reason = $"state checksum mismatch (stored {parsed.BodyCrc:x8}, computed {crc:x8}): the file is damaged";
                return null;
            }

            reason = string.Empty;
            return new StoredSnapshot(parsed.Index, parsed.Epoch, state);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = DiskErrors.Describe(e, "reading the snapshot", path).Message;
            return null;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the next open removes leftover temporary files.
        }
    }

    /// <summary>Records a new snapshot and deletes all but the newest <see cref="Kept"/>. Under _lock.</summary>
    private void Published(SnapshotInfo info)
    {
        if (_latest is not { } latest || info.Index >= latest.Index)
        {
            _latest = info;
        }

        var indices = Indices();
        for (var i = 0; i < indices.Count - Kept; i++)
        {
            var path = PathFor(indices[i]);
            TryDelete(path);
            _logger.SnapshotPruned(path, Kept);
        }

        // An unfinished install of a snapshot no newer than this one will never be worth resuming.
        foreach (var partial in System.IO.Directory.EnumerateFiles(Directory, "*" + SnapshotFile.Extension + SnapshotFile.PartialSuffix))
        {
            var name = Path.GetFileName(partial);
            if (SnapshotFile.TryParseName(name[..^SnapshotFile.PartialSuffix.Length], out var index) && index <= info.Index)
            {
                TryDelete(partial);
                _logger.SnapshotInstallSuperseded(partial, info.Index);
            }
        }
    }
}

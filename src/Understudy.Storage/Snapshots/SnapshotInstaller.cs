using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage.Snapshots;

/// <summary>
/// Receives a snapshot file in chunks (<see cref="SnapshotStore.BeginInstall"/>) into a partial file that
/// survives a broken connection or a restart: the sender resumes at <see cref="ReceivedLength"/>.
/// <see cref="Complete"/> checks the header and body checksums and only then renames the file into place, so a
/// damaged transfer never replaces a usable snapshot. Not thread-safe: one transfer, one caller.
/// </summary>
/// <remarks>
/// Chunks are not fsynced one by one (that would make a transfer crawl): after a machine crash the partial file
/// may end in bytes that never reached the disk, which <see cref="Complete"/>'s checksum catches, and the transfer
/// then starts again from the beginning.
/// </remarks>
public sealed class SnapshotInstaller : IDisposable
{
    private readonly SnapshotStore _store;
    private readonly SafeFileHandle _handle;
    private readonly string _path;
    private bool _done;

    internal SnapshotInstaller(SnapshotStore store, SafeFileHandle handle, string path, long index, long epoch, long totalLength, long receivedLength)
    {
        _store = store;
        _handle = handle;
        _path = path;
        Index = index;
        Epoch = epoch;
        TotalLength = totalLength;
        ReceivedLength = receivedLength;
    }

    public long Index { get; }

    public long Epoch { get; }

    /// <summary>Bytes in the whole file (<see cref="SnapshotSource.Length"/>).</summary>
    public long TotalLength { get; }

    /// <summary>Bytes received so far, from the start without gaps: where the sender continues.</summary>
    public long ReceivedLength { get; private set; }

    /// <summary>
    /// Stores <paramref name="chunk"/> at <paramref name="offset"/>. A chunk may repeat bytes already received
    /// (a resend after a break; they are skipped) but may not leave a gap.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The chunk starts after <see cref="ReceivedLength"/> or ends past <see cref="TotalLength"/>.</exception>
    /// <exception cref="StorageException">The disk is full or failed; the partial file stays for a later resume.</exception>
    public void Write(long offset, ReadOnlySpan<byte> chunk)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (offset < 0 || offset > ReceivedLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"snapshot {Index}: a chunk must start at or before byte {ReceivedLength}, the end of what was received");
        }

        if (offset + chunk.Length > TotalLength)
        {
            throw new ArgumentOutOfRangeException(nameof(chunk), chunk.Length, $"snapshot {Index}: a chunk of {chunk.Length} bytes at {offset} ends past the file's {TotalLength} bytes");
        }

        var skip = (int)(ReceivedLength - offset);
        if (skip >= chunk.Length)
        {
            return;
        }

        try
        {
            RandomAccess.Write(_handle, chunk[skip..], ReceivedLength);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"receiving snapshot {Index}", _path);
        }

        ReceivedLength += chunk.Length - skip;
    }

    /// <summary>
    /// Checks the received file (header, index, epoch, body checksum), makes it durable and renames it into
    /// place; the store then keeps the newest <see cref="SnapshotStore.Kept"/>. A file that fails the check is
    /// deleted (the transfer must start again) and the snapshots already there are untouched.
    /// </summary>
    /// <exception cref="InvalidOperationException">Not everything was received yet.</exception>
    /// <exception cref="StorageException">The file is damaged, or the disk failed.</exception>
    public SnapshotInfo Complete()
    {
        Verify();
        return Publish();
    }

    /// <summary>
    /// Checks the received file (header, index, epoch, body checksum) and makes it durable, still under its partial
    /// name: <see cref="Publish"/> (or <see cref="DurableLog.InstallSnapshot"/>, which orders it with the log's reset)
    /// renames it into place. A file that fails the check is deleted (the transfer must start again).
    /// </summary>
    /// <exception cref="InvalidOperationException">Not everything was received yet.</exception>
    /// <exception cref="StorageException">The file is damaged, or the disk failed.</exception>
    public void Verify()
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (ReceivedLength != TotalLength)
        {
            throw new InvalidOperationException($"snapshot {Index}: {ReceivedLength} of {TotalLength} bytes received; send the rest from byte {ReceivedLength}");
        }

        try
        {
            RandomAccess.FlushToDisk(_handle);
            Span<byte> header = stackalloc byte[SnapshotFile.HeaderSize];
            var read = SnapshotFile.ReadFully(_handle, header, 0);
            var problem = SnapshotFile.CheckHeader(header[..read], TotalLength, out var parsed);
            if (problem is null && (parsed.Index != Index || parsed.Epoch != Epoch))
            {
                problem = $"it holds snapshot {parsed.Index} of epoch {parsed.Epoch}, not {Index} of epoch {Epoch}";
            }

            if (problem is null)
            {
                var crc = SnapshotFile.BodyChecksum(_handle, parsed.BodyLength);
                if (crc != parsed.BodyCrc)
                {
                    problem = $"state checksum mismatch (stored {parsed.BodyCrc:x8}, computed {crc:x8})";
                }
            }

            _done = true;
            _handle.Dispose();
            if (problem is not null)
            {
                File.Delete(_path);
                throw new StorageException($"Snapshot {Index} was received damaged ({problem}) and was discarded: the transfer must start again from byte 0.");
            }

            Verified = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"installing snapshot {Index}", _path);
        }
    }

    /// <summary>True once <see cref="Verify"/> found the whole file sound (and fsynced it).</summary>
    public bool Verified { get; private set; }

    /// <summary>The verified file's state, read back whole (to restore from it before it is published).</summary>
    /// <exception cref="StorageException">The file cannot be read back, or no longer checks.</exception>
    public StoredSnapshot ReadVerified()
    {
        if (!Verified)
        {
            throw new InvalidOperationException($"snapshot {Index} was not verified");
        }

        return SnapshotStore.TryLoadFile(_path, Index, out var reason)
            ?? throw new StorageException($"Snapshot {Index}, received and checked, cannot be read back from '{_path}': {reason}.");
    }

    /// <summary>Renames the verified file into place (and fsyncs the folder); the store then keeps the newest <see cref="SnapshotStore.Kept"/>.</summary>
    /// <exception cref="StorageException">The disk failed.</exception>
    public SnapshotInfo Publish()
    {
        if (!Verified)
        {
            throw new InvalidOperationException($"snapshot {Index} was not verified");
        }

        try
        {
            return _store.Publish(_path, Index, Epoch, TotalLength);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"installing snapshot {Index}", _path);
        }
    }

    /// <summary>Closes the partial file; unless completed, it stays for a resumed transfer.</summary>
    public void Dispose()
    {
        if (!_done)
        {
            _done = true;
            _handle.Dispose();
        }
    }
}

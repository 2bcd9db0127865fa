using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage.Snapshots;

/// <summary>
/// A snapshot file open for sending in chunks (<see cref="SnapshotStore.OpenRead"/>): the receiver gives the
/// same bytes, at the same offsets, to a <see cref="SnapshotInstaller"/>. Reads by offset, so a resumed transfer
/// starts wherever the receiver got to. The file stays readable even if a newer snapshot deletes it meanwhile
/// (on Linux and macOS; the open handle keeps it).
/// </summary>
public sealed class SnapshotSource : IDisposable
{
    private readonly SafeFileHandle _handle;

    internal SnapshotSource(SafeFileHandle handle, long index, long epoch, long length)
    {
        _handle = handle;
        Index = index;
        Epoch = epoch;
        Length = length;
    }

    /// <summary>The last log index the snapshot includes.</summary>
    public long Index { get; }

    /// <summary>The epoch of that entry.</summary>
    public long Epoch { get; }

    /// <summary>Bytes in the file, header included: what <see cref="SnapshotStore.BeginInstall"/> takes as its total.</summary>
    public long Length { get; }

    /// <summary>Copies bytes from <paramref name="offset"/> into <paramref name="buffer"/>; returns how many (0 at the end).</summary>
    /// <exception cref="StorageException">The disk failed.</exception>
    public int Read(long offset, Span<byte> buffer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (offset >= Length)
        {
            return 0;
        }

        var want = (int)Math.Min(buffer.Length, Length - offset);
        try
        {
            return SnapshotFile.ReadFully(_handle, buffer[..want], offset);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, $"reading snapshot {Index} to send it", $"snapshot {Index}");
        }
    }

    public void Dispose() => _handle.Dispose();
}

using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage;

/// <summary>The few durable-file moves everything here is built from.</summary>
internal static partial class DiskFiles
{
    private const string TempSuffix = ".tmp";

    /// <summary>
    /// Replaces <paramref name="fileName"/> in <paramref name="directory"/> with <paramref name="content"/> so
    /// that after a crash at any point the file holds either the old content or the new, whole: write a
    /// temporary file, fsync it, rename it over the target (atomic on POSIX and NTFS), fsync the folder so
    /// the rename itself survives a power cut.
    /// </summary>
    public static void WriteAtomically(string directory, string fileName, ReadOnlySpan<byte> content)
    {
        var target = Path.Combine(directory, fileName);
        var temp = target + TempSuffix;
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            RandomAccess.Write(handle, content, 0);
            RandomAccess.FlushToDisk(handle);
        }

        File.Move(temp, target, overwrite: true);
        FsyncDirectory(directory);
    }

    /// <summary>Deletes the temporary file a crash before the rename may have left; returns its path if there was one.</summary>
    public static string? RemoveStaleTemp(string directory, string fileName)
    {
        var temp = Path.Combine(directory, fileName + TempSuffix);
        if (!File.Exists(temp))
        {
            return null;
        }

        File.Delete(temp);
        return temp;
    }

    /// <summary>Reads a small file whole, or returns null when it does not exist.</summary>
    public static byte[]? ReadIfExists(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Makes the folder's entries durable (files created, renamed or deleted in it). On Linux and macOS a
    /// new file's name lives in the directory, which has to be fsynced on its own; the runtime cannot open a
    /// directory as a file handle, so this calls open(2)/fsync(2) directly. Windows has no equivalent call
    /// (NTFS journals its metadata), so there it does nothing. On macOS a plain fsync hands the entry to the
    /// drive but does not flush the drive's own cache (F_FULLFSYNC would); not done here, untested there.
    /// </summary>
    public static void FsyncDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var fd = Open(directory, ORdonly);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"cannot open folder '{directory}' to fsync it ({Marshal.GetPInvokeErrorMessage(errno)})", errno);
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fsync of folder '{directory}' failed ({Marshal.GetPInvokeErrorMessage(errno)})", errno);
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Truncates a file to <paramref name="length"/> and makes that durable.</summary>
    public static void TruncateDurably(string path, long length)
    {
        using SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        RandomAccess.SetLength(handle, length);
        RandomAccess.FlushToDisk(handle);
    }

    // O_RDONLY is 0 on every Unix the runtime supports.
    private const int ORdonly = 0;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}

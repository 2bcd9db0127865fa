namespace Understudy.Storage;

/// <summary>Turns the runtime's I/O exceptions into one line an operator can act on.</summary>
internal static class DiskErrors
{
    // errno values are the same on Linux and macOS for these; the runtime puts errno in HResult on Unix.
    private const int Eio = 5;
    private const int Enospc = 28;
    private const int Erofs = 30;
    private const int Edquot = 122;
    private const int EdquotMac = 69;

    // Windows HResults: ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL, ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION.
    private const int WinDiskFull = unchecked((int)0x80070070);
    private const int WinHandleDiskFull = unchecked((int)0x80070027);
    private const int WinSharingViolation = unchecked((int)0x80070020);
    private const int WinLockViolation = unchecked((int)0x80070021);

    // EWOULDBLOCK from flock(LOCK_NB): 11 on Linux, 35 on macOS and the BSDs.
    private const int EwouldblockLinux = 11;
    private const int EwouldblockMac = 35;

    /// <summary>A <see cref="StorageException"/> saying what failed while <paramref name="doing"/> at <paramref name="path"/>.</summary>
    public static StorageException Describe(Exception error, string doing, string path)
    {
        if (error is StorageException storage)
        {
            return storage;
        }

        if (doing.StartsWith("creating", StringComparison.Ordinal) && error is IOException and not PathTooLongException && CannotCreate(path) is { } why)
        {
            return new StorageException($"Cannot create the data folder '{path}': {why}; choose another data folder.", error);
        }

        var message = error switch
        {
            IOException io when IsDiskFull(io) =>
                $"The disk holding '{path}' is full while {doing}: free space on it (or move the data folder to a larger disk), then restart.",
            IOException io when !OperatingSystem.IsWindows() && io.HResult == Erofs =>
                $"The file system holding '{path}' is read-only while {doing}: remount it read-write or move the data folder, then restart.",
            IOException io when !OperatingSystem.IsWindows() && io.HResult == Eio =>
                $"The disk reported an I/O error while {doing} at '{path}': the device may be failing (see the kernel log); replace it or move the data folder, then restart.",
            UnauthorizedAccessException =>
                $"No permission while {doing} at '{path}': give this process's user read and write access to that folder, or choose another data folder.",
            DirectoryNotFoundException =>
                $"A folder vanished while {doing} at '{path}': something else deleted or moved the data folder; restore it or restart with another one.",
            _ => $"Storage failed while {doing} at '{path}': {OneLine(error.Message)}",
        };
        return new StorageException(message, error);
    }

    /// <summary>
    /// Why a folder that does not exist cannot be created: a file where a folder must be on its path, or a parent
    /// that takes no new folders (/proc, /sys). Null when the path looks creatable (the error has another cause).
    /// </summary>
    private static string? CannotCreate(string path)
    {
        if (File.Exists(path))
        {
            return "a file has that name";
        }

        if (Directory.Exists(path))
        {
            return null;
        }

        for (var parent = Path.GetDirectoryName(path); !string.IsNullOrEmpty(parent); parent = Path.GetDirectoryName(parent))
        {
            if (File.Exists(parent))
            {
                return $"'{parent}' is a file, not a folder";
            }

            if (Directory.Exists(parent))
            {
                return $"the file system at '{parent}' does not allow new folders there";
            }
        }

        return "no part of its path exists";
    }

    /// <summary>True when another process (or another open in this one) holds a lock on the file.</summary>
    public static bool IsLockConflict(IOException error) =>
        OperatingSystem.IsWindows()
            ? error.HResult is WinSharingViolation or WinLockViolation
            : error.HResult is EwouldblockLinux or EwouldblockMac;

    private static bool IsDiskFull(IOException error) =>
        OperatingSystem.IsWindows()
            ? error.HResult is WinDiskFull or WinHandleDiskFull
            : error.HResult is Enospc or Edquot or EdquotMac;

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}

using System.Globalization;
using System.Text;

namespace Understudy.Storage;

/// <summary>
/// An exclusive hold on a data folder, so two processes never write one log or one configuration.
/// It is a <c>LOCK</c> file kept open with <see cref="FileShare.None"/>: on Windows a sharing lock, on
/// Unix the runtime takes <c>flock(LOCK_EX | LOCK_NB)</c>, which the kernel drops when the process dies
/// however it dies, so a crash never leaves a stale lock behind. (Setting
/// DOTNET_SYSTEM_IO_DISABLEFILELOCKING turns this off, as it does for every .NET program.)
/// </summary>
internal sealed class FolderLock : IDisposable
{
    public const string FileName = "LOCK";

    private readonly FileStream _file;

    private FolderLock(FileStream file) => _file = file;

    /// <summary>Takes the lock or throws a <see cref="StorageException"/> naming the folder.</summary>
    /// <param name="directory">The data folder (must exist).</param>
    /// <param name="owner">Who wants it, for the message: "server", "monitor".</param>
    public static FolderLock Acquire(string directory, string owner)
    {
        var path = Path.Combine(directory, FileName);
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        }
        catch (IOException e) when (DiskErrors.IsLockConflict(e))
        {
            throw new StorageException(
                $"Data folder '{directory}' is in use by another {owner} (it holds '{path}'): stop that process, or give this {owner} its own data folder.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskErrors.Describe(e, "locking the data folder", path);
        }

        try
        {
            // For an operator's `cat LOCK`: who holds it. Advisory text only; the lock is the open file.
            var text = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{owner} pid {Environment.ProcessId}\n"));
            file.SetLength(0);
            file.Write(text);
            file.Flush();
        }
        catch (IOException)
        {
            // The note is a courtesy; the lock is already held.
        }

        return new FolderLock(file);
    }

    public void Dispose() => _file.Dispose();
}

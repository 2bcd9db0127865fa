namespace Understudy.Storage;

/// <summary>
/// The highest epoch a server has seen, in one small <see cref="CheckedTextFile"/> an operator can read:
/// <code>
/// epoch=42
/// crc32c=1a2b3c4d
/// </code>
/// A damaged file means the disk or a person changed it, and that is an error rather than epoch 0: a server that
/// forgot its epoch could act in one it already left.
/// </summary>
internal static class EpochFile
{
    public const string FileName = "epoch";

    private static readonly string[] Keys = ["epoch"];

    public static void Write(string directory, long epoch) => CheckedTextFile.Write(directory, FileName, (Keys[0], epoch));

    /// <summary>The saved epoch, or 0 when the file does not exist.</summary>
    /// <exception cref="StorageException">The file is damaged.</exception>
    public static long Read(string directory) =>
        CheckedTextFile.Read(
            Path.Combine(directory, FileName),
            Keys,
            "Epoch file",
            "it records the highest epoch this server has seen and cannot be guessed. Restore it, or move the data folder aside and restart so the server rejoins empty as a new backup.") is [var epoch]
            ? epoch
            : 0;
}

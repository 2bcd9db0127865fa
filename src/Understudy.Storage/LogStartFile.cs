namespace Understudy.Storage;

/// <summary>
/// Where the log starts after a snapshot was installed from the primary (<see cref="DurableLog.InstallSnapshot"/>):
/// the log belongs to snapshot <paramref name="SnapshotIndex"/> and begins at <paramref name="NextIndex"/>, after an
/// entry of <paramref name="EpochBefore"/>. <paramref name="NextIndex"/> may be at or below the snapshot's index: the
/// message store's snapshot still reads its retained messages from the log, which the primary sends after the snapshot.
/// </summary>
/// <param name="SnapshotIndex">The installed snapshot's index.</param>
/// <param name="NextIndex">The first index the log holds after the install.</param>
/// <param name="EpochBefore">The epoch of the entry at <paramref name="NextIndex"/> - 1 (the log-matching check needs it there).</param>
public readonly record struct LogStart(long SnapshotIndex, long NextIndex, long EpochBefore);

/// <summary>
/// The <see cref="LogStart"/> file of a data folder, a small <see cref="CheckedTextFile"/> an operator can read:
/// <code>
/// snapshot=1200
/// next=1001
/// epoch-before=3
/// crc32c=1a2b3c4d
/// </code>
/// Written atomically: it is the moment an install takes effect (before it, a restart has the old log and
/// snapshots; after it, the new snapshot and only the log written after the reset).
/// </summary>
internal static class LogStartFile
{
    public const string FileName = "log-start";

    private static readonly string[] Keys = ["snapshot", "next", "epoch-before"];

    public static void Write(string directory, LogStart start) =>
        CheckedTextFile.Write(directory, FileName, (Keys[0], start.SnapshotIndex), (Keys[1], start.NextIndex), (Keys[2], start.EpochBefore));

    /// <summary>The recorded start, or null when no snapshot was ever installed here.</summary>
    /// <exception cref="StorageException">The file is damaged.</exception>
    public static LogStart? Read(string directory) =>
        CheckedTextFile.Read(
            Path.Combine(directory, FileName),
            Keys,
            "Log start file",
            $"it says where the log begins after a snapshot installed from the primary, and without it the log cannot be told apart from an older one. {LogRecovery.Remedy}",
            Implausible) is [var snapshot, var next, var epochBefore]
            ? new LogStart(snapshot, next, epochBefore)
            : null;

    private static string? Implausible(long[] numbers) =>
        numbers[0] < 1 || numbers[1] < 1 || numbers[1] > numbers[0] + 1
            ? $"the log cannot start at {numbers[1]} for snapshot {numbers[0]}"
            : null;
}

using System.Globalization;
using System.Text;

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
/// The <see cref="LogStart"/> file of a data folder, small text an operator can read:
/// <code>
/// snapshot=1200
/// next=1001
/// epoch-before=3
/// crc32c=1a2b3c4d
/// </code>
/// The checksum covers the lines above it. Written atomically: it is the moment an install takes effect (before it,
/// a restart has the old log and snapshots; after it, the new snapshot and only the log written after the reset).
/// </summary>
internal static class LogStartFile
{
    public const string FileName = "log-start";

    public static void Write(string directory, LogStart start)
    {
        var body = string.Create(CultureInfo.InvariantCulture, $"snapshot={start.SnapshotIndex}\nnext={start.NextIndex}\nepoch-before={start.EpochBefore}\n");
        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(body));
        var text = string.Create(CultureInfo.InvariantCulture, $"{body}crc32c={crc:x8}\n");
        DiskFiles.WriteAtomically(directory, FileName, Encoding.UTF8.GetBytes(text));
    }

    /// <summary>The recorded start, or null when no snapshot was ever installed here.</summary>
    /// <exception cref="StorageException">The file is damaged.</exception>
    public static LogStart? Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        var bytes = DiskFiles.ReadIfExists(path);
        if (bytes is null)
        {
            return null;
        }

        if (TryParse(bytes, out var start, out var problem))
        {
            return start;
        }

        throw new StorageException(
            $"Log start file '{path}' is damaged ({problem}): it says where the log begins after a snapshot installed from the primary, and without it the log cannot be told apart from an older one. {LogRecovery.Remedy}");
    }

    private static bool TryParse(byte[] bytes, out LogStart start, out string problem)
    {
        start = default;
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            problem = "not UTF-8 text";
            return false;
        }

        var lines = text.Split('\n');
        string[] keys = ["snapshot=", "next=", "epoch-before=", "crc32c="];
        if (lines.Length != keys.Length + 1 || lines[^1].Length != 0 || keys.Where((key, i) => !lines[i].StartsWith(key, StringComparison.Ordinal)).Any())
        {
            problem = "expected the lines snapshot=N, next=N, epoch-before=N and crc32c=X";
            return false;
        }

        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(string.Concat(lines[..3].Select(l => l + "\n"))));
        if (!uint.TryParse(lines[3].AsSpan(keys[3].Length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var stored) || stored != crc)
        {
            problem = $"checksum does not match (computed {crc:x8})";
            return false;
        }

        var numbers = new long[3];
        for (var i = 0; i < numbers.Length; i++)
        {
            if (!long.TryParse(lines[i].AsSpan(keys[i].Length), NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]))
            {
                problem = $"'{lines[i]}' is not a non-negative number";
                return false;
            }
        }

        if (numbers[0] < 1 || numbers[1] < 1 || numbers[1] > numbers[0] + 1)
        {
            problem = $"the log cannot start at {numbers[1]} for snapshot {numbers[0]}";
            return false;
        }

        start = new LogStart(numbers[0], numbers[1], numbers[2]);
        problem = string.Empty;
        return true;
    }
}

using System.Globalization;
using System.Text;

namespace Understudy.Storage;

/// <summary>
/// The highest epoch a server has seen, in one small text file an operator can read:
/// <code>
/// epoch=42
/// crc32c=1a2b3c4d
/// </code>
/// The checksum covers the first line. Written atomically, so a damaged file means the disk or a person
/// changed it, and that is an error rather than epoch 0: a server that forgot its epoch could act in one
/// it already left.
/// </summary>
internal static class EpochFile
{
    public const string FileName = "epoch";

    public static void Write(string directory, long epoch)
    {
        var line = string.Create(CultureInfo.InvariantCulture, $"epoch={epoch}\n");
        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(line));
        var text = string.Create(CultureInfo.InvariantCulture, $"{line}crc32c={crc:x8}\n");
        DiskFiles.WriteAtomically(directory, FileName, Encoding.UTF8.GetBytes(text));
    }

    /// <summary>The saved epoch, or 0 when the file does not exist.</summary>
    public static long Read(string directory)
    {
        var path = Path.Combine(directory, FileName);
        var bytes = DiskFiles.ReadIfExists(path);
        if (bytes is null)
        {
            return 0;
        }

        if (TryParse(bytes, out var epoch, out var problem))
        {
            return epoch;
        }

        throw new StorageException(
            $"Epoch file '{path}' is damaged ({problem}): it records the highest epoch this server has seen and cannot be guessed. Restore it, or move the data folder aside and restart so the server rejoins empty as a new backup.");
    }

    private static bool TryParse(byte[] bytes, out long epoch, out string problem)
    {
        epoch = 0;
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
        if (lines.Length != 3 || lines[2].Length != 0 || !lines[0].StartsWith("epoch=", StringComparison.Ordinal) || !lines[1].StartsWith("crc32c=", StringComparison.Ordinal))
        {
            problem = "expected the two lines epoch=N and crc32c=X";
            return false;
        }

        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(lines[0] + "\n"));
        if (!uint.TryParse(lines[1].AsSpan("crc32c=".Length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var stored) || stored != crc)
        {
            problem = $"checksum does not match (computed {crc:x8})";
            return false;
        }

        if (!long.TryParse(lines[0].AsSpan("epoch=".Length), NumberStyles.None, CultureInfo.InvariantCulture, out epoch))
        {
            problem = "the epoch is not a non-negative number";
            return false;
        }

        problem = string.Empty;
        return true;
    }
}

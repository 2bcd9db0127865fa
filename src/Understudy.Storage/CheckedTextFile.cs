using System.Globalization;
using System.Text;

namespace Understudy.Storage;

/// <summary>
/// A small text file of numbers an operator can read, one <c>key=N</c> line each, closed by a checksum line:
/// <code>
/// snapshot=1200
/// next=1001
/// crc32c=1a2b3c4d
/// </code>
/// The checksum covers every line above it. Written atomically, so a torn or changed file means the disk or a
/// person changed it, and reading refuses it rather than guessing. The epoch and log-start files are both of this
/// kind, so one reader keeps their checks the same.
/// </summary>
internal static class CheckedTextFile
{
    private const string ChecksumKey = "crc32c=";

    /// <summary>Writes the lines <c>key=value</c>, in order, and the checksum over them.</summary>
    public static void Write(string directory, string fileName, params ReadOnlySpan<(string Key, long Value)> lines)
    {
        var body = new StringBuilder();
        foreach (var (key, value) in lines)
        {
            body.Append(CultureInfo.InvariantCulture, $"{key}={value}\n");
        }

        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(body.ToString()));
        body.Append(CultureInfo.InvariantCulture, $"{ChecksumKey}{crc:x8}\n");
        DiskFiles.WriteAtomically(directory, fileName, Encoding.UTF8.GetBytes(body.ToString()));
    }

    /// <summary>
    /// The numbers of <paramref name="keys"/>, in order, or null when the file does not exist. A file that is not
    /// exactly those lines with a matching checksum, or that <paramref name="validate"/> finds wrong (it returns
    /// the problem, or null), is refused with "<paramref name="title"/> 'path' is damaged (problem):
    /// <paramref name="consequence"/>".
    /// </summary>
    /// <exception cref="StorageException">The file is damaged.</exception>
    public static long[]? Read(string path, IReadOnlyList<string> keys, string title, string consequence, Func<long[], string?>? validate = null)
    {
        var bytes = DiskFiles.ReadIfExists(path);
        if (bytes is null)
        {
            return null;
        }

        var problem = Parse(bytes, keys, out var values) ?? validate?.Invoke(values);
        if (problem is null)
        {
            return values;
        }

        throw new StorageException($"{title} '{path}' is damaged ({problem}): {consequence}");
    }

    /// <summary>
    /// Reads the numbers of <paramref name="keys"/> from a file's bytes; returns why they are not a whole file of
    /// exactly those lines and a matching checksum, or null when they are.
    /// </summary>
    public static string? Parse(byte[] bytes, IReadOnlyList<string> keys, out long[] values)
    {
        values = [];
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return "not UTF-8 text";
        }

        var lines = text.Split('\n');
        var checksumLine = keys.Count;
        if (lines.Length != keys.Count + 2 || lines[^1].Length != 0 || !lines[checksumLine].StartsWith(ChecksumKey, StringComparison.Ordinal)
            || keys.Where((key, i) => !lines[i].StartsWith(key + "=", StringComparison.Ordinal)).Any())
        {
            return $"expected the lines {string.Join(", ", keys.Select(key => key + "=N"))} and {ChecksumKey}X";
        }

        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(string.Concat(lines[..checksumLine].Select(line => line + "\n"))));
        if (!uint.TryParse(lines[checksumLine].AsSpan(ChecksumKey.Length), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var stored) || stored != crc)
        {
            return $"checksum does not match (computed {crc:x8})";
        }

        var numbers = new long[keys.Count];
        for (var i = 0; i < numbers.Length; i++)
        {
            if (!long.TryParse(lines[i].AsSpan(keys[i].Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]))
            {
                return $"'{lines[i]}' is not a non-negative number";
            }
        }

        values = numbers;
        return null;
    }
}

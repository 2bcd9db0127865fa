using System.Globalization;

namespace Understudy.Storage;

/// <summary>
/// One segment file: the entries from <see cref="FirstIndex"/> on, one record after another. The name is
/// the first index, zero-padded to 20 digits, so names sort in log order. Owned by the log's writer.
/// </summary>
internal sealed class Segment
{
    public const string Extension = ".log";
    private const int NameDigits = 20;

    public Segment(string directory, long firstIndex)
    {
        FirstIndex = firstIndex;
        Path = System.IO.Path.Combine(directory, FileNameFor(firstIndex));
    }

    public long FirstIndex { get; }

    public string Path { get; }

    public string FileName => System.IO.Path.GetFileName(Path);

    /// <summary>Bytes in the file.</summary>
    public long Length { get; set; }

    /// <summary>
    /// File offset of each record (entry <c>FirstIndex + i</c> starts at <c>Offsets[i]</c>), so a truncation
    /// knows where to cut without reading the file. 8 bytes an entry, next to the entry itself in memory.
    /// </summary>
    public List<long> Offsets { get; } = [];

    /// <summary>The last index held, or <c>FirstIndex - 1</c> when empty.</summary>
    public long LastIndex => FirstIndex + Offsets.Count - 1;

    public static string FileNameFor(long firstIndex) =>
        firstIndex.ToString("D" + NameDigits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) + Extension;

    /// <summary>Parses a segment file name; false for any other file.</summary>
    public static bool TryParseName(string fileName, out long firstIndex)
    {
        firstIndex = 0;
        return fileName.Length == NameDigits + Extension.Length
            && fileName.EndsWith(Extension, StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(0, NameDigits), NumberStyles.None, CultureInfo.InvariantCulture, out firstIndex)
            && firstIndex > 0;
    }
}

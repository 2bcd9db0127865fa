using System.Globalization;

namespace Understudy.Storage;

/// <summary>
/// One segment file: the entries from <see cref="FirstIndex"/> on, one record after another. The name is
/// the first index, zero-padded to 20 digits, so names sort in log order, then the record format's extension
/// (<see cref="Extension"/>): a segment names its own format, so a folder written by an older version is
/// recognised by its file names (<see cref="IsLegacyName"/>) before any record is misread.
/// </summary>
/// <remarks>
/// Memory is O(segments), not O(entries): a segment keeps one offset every <see cref="SparseEvery"/> records
/// (<see cref="Sparse"/>), enough for a read to start near any entry and for a truncation to find its cut, or none at
/// all until something first reads it (sealed segments recovery skipped). The open segment too: an offset per record
/// would be 8 bytes a record, a list of about 8 MiB for a segment of 64-byte writes, thrown away at every seal.
/// Thread rules: <see cref="Length"/>, <see cref="Count"/> and <see cref="Sparse"/> are changed only under the log's
/// segment lock (by the writer, once the bytes are in the file, and by the first read that indexes a sealed segment),
/// so readers see what was written, never what is still being written.
/// </remarks>
internal sealed class Segment
{
    /// <summary>Format 2: records carry the primary's log time (format 1, <see cref="LegacyExtension"/>, did not).</summary>
    public const string Extension = ".v2.log";

    /// <summary>Segments of format 1, written before entries carried log time; this version does not read them.</summary>
    public const string LegacyExtension = ".log";

    /// <summary>Records between two sparse offsets: a read skips at most this many records to reach its entry.</summary>
    public const int SparseEvery = 256;

    private const int NameDigits = 20;

    public Segment(string directory, long firstIndex)
    {
        FirstIndex = firstIndex;
        Path = System.IO.Path.Combine(directory, FileNameFor(firstIndex));
    }

    public long FirstIndex { get; }

    public string Path { get; }

    public string FileName => System.IO.Path.GetFileName(Path);

    /// <summary>Bytes written to the file (what a reader may read).</summary>
    public long Length { get; set; }

    /// <summary>Records written to the file.</summary>
    public long Count { get; set; }

    /// <summary>
    /// Offset of record <c>i * SparseEvery</c> at position <c>i</c>, for the records written so far; null for
    /// a sealed segment nothing has read since recovery (built by the first read that needs it).
    /// </summary>
    public List<long>? Sparse { get; set; }

    /// <summary>The last index held, or <c>FirstIndex - 1</c> when empty.</summary>
    public long LastIndex => FirstIndex + Count - 1;

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

    /// <summary>True for a segment of format 1 (20 digits then <see cref="LegacyExtension"/>), which this version refuses.</summary>
    public static bool IsLegacyName(string fileName) =>
        fileName.Length == NameDigits + LegacyExtension.Length
        && fileName.EndsWith(LegacyExtension, StringComparison.Ordinal)
        && long.TryParse(fileName.AsSpan(0, NameDigits), NumberStyles.None, CultureInfo.InvariantCulture, out _);

    /// <summary>The sparse index of a full offset list.</summary>
    public static List<long> SparseOf(List<long> offsets, int count)
    {
        var sparse = new List<long>((count + SparseEvery - 1) / SparseEvery);
        for (var i = 0; i < count; i += SparseEvery)
        {
            sparse.Add(offsets[i]);
        }

        return sparse;
    }
}

using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>
/// What recovery found: the segments (the last with full record offsets, others sparse or not yet indexed),
/// the entries from the requested index on, and the span of the log on disk.
/// </summary>
internal sealed record RecoveredLog(List<Segment> Segments, List<LogEntry> Entries, long FirstIndex, long LastIndex, int SegmentsRead);

/// <summary>
/// Reads and validates, at open, the segments that hold entries from the requested index on; of older segments
/// it reads only names and sizes, trusting what earlier clean writes and fsyncs put there (as Kafka does), so
/// restart time depends on the tail, not the log's length. Damage in those older segments is found by the read
/// that first touches them. The one repair it makes is cutting a torn tail off the last segment: a write
/// interrupted by a crash leaves a partial or garbled record at the very end, and nothing past it was ever
/// synced, so nothing past it was acknowledged. Damage anywhere else may hit committed entries, and dropping
/// those silently would break "no acknowledged write is lost", so it is an error.
/// </summary>
internal static class LogRecovery
{
    public const string Remedy =
        "Move this data folder aside and restart the server with an empty one so it rejoins as a backup and copies the log from the primary (or restore the folder from a backup).";

    /// <param name="directory">The data folder.</param>
    /// <param name="recoverFrom">The first index the caller needs (its snapshot's index + 1); an empty log starts there.</param>
    /// <param name="logger">For the torn-tail warning.</param>
    public static RecoveredLog Recover(string directory, long recoverFrom, ILogger logger)
    {
        var segments = new List<Segment>();
        foreach (var file in Directory.EnumerateFiles(directory, "*" + Segment.LegacyExtension))
        {
            // Format-1 records lack the log time: read as format 2 they would parse into garbage, so refuse the folder whole.
            if (Segment.IsLegacyName(Path.GetFileName(file)))
            {
                throw new StorageException(
                    $"The data folder '{directory}' holds a log in format 1 (segment '{Path.GetFileName(file)}'), written by an earlier version of Understudy before log entries carried the primary's time; this version reads format 2 only. Move the folder aside and start this server with an empty one: it rejoins as a backup and copies the log from the primary.");
            }

            if (Segment.TryParseName(Path.GetFileName(file), out var first))
            {
                segments.Add(new Segment(directory, first));
            }
        }

        segments.Sort((a, b) => a.FirstIndex.CompareTo(b.FirstIndex));
        if (segments.Count == 0)
        {
            return new RecoveredLog(segments, [], recoverFrom, recoverFrom - 1, 0);
        }

        if (recoverFrom < segments[0].FirstIndex)
        {
            throw new StorageException(
                $"The log in '{directory}' starts at index {segments[0].FirstIndex} (older entries were compacted into a snapshot) but the server needs it from index {recoverFrom}: the snapshot covering the entries before {segments[0].FirstIndex} is missing or was refused. Restore the snapshots folder, or {char.ToLowerInvariant(Remedy[0])}{Remedy[1..]}");
        }

        // The first segment read in full: the one holding recoverFrom (the last is always read, for its torn tail).
        var firstRead = segments.Count - 1;
        while (firstRead > 0 && segments[firstRead].FirstIndex > recoverFrom)
        {
            firstRead--;
        }

        for (var i = 0; i < firstRead; i++)
        {
            // Names and sizes only: the next segment's name says how many entries this one holds.
            var segment = segments[i];
            segment.Length = new FileInfo(segment.Path).Length;
            segment.Count = segments[i + 1].FirstIndex - segment.FirstIndex;
            if (segment.Length == 0 || segment.Count <= 0)
            {
                throw new StorageException($"Segment '{segment.Path}' is empty or out of order but later segments exist: the log has a hole. {Remedy}");
            }
        }

        var entries = new List<LogEntry>();
        var buffer = Array.Empty<byte>();
        var expected = segments[firstRead].FirstIndex;
        for (var i = firstRead; i < segments.Count; i++)
        {
            var segment = segments[i];
            var isLast = i == segments.Count - 1;
            if (segment.FirstIndex != expected)
            {
                throw new StorageException(
                    $"Segment '{segment.Path}' starts at index {segment.FirstIndex} but the log before it ends at index {expected - 1}: a segment file is missing or was renamed. {Remedy}");
            }

            var length = ReadWhole(segment.Path, ref buffer);
            if (length == 0 && !isLast)
            {
                throw new StorageException($"Segment '{segment.Path}' is empty but later segments exist: the log has a hole. {Remedy}");
            }

            var offsets = new List<long>();
            var data = buffer.AsSpan(0, length);
            var at = 0;
            while (at < length)
            {
                var state = LogRecord.Inspect(data[at..], out var size, out var problem);
                if (state == RecordState.Valid)
                {
                    var index = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(data[(at + LogRecord.HeaderSize)..]);
                    if (index != expected)
                    {
                        throw new StorageException(
                            $"Segment '{segment.Path}' holds index {index} at byte {at} where index {expected} belongs: the log is out of order. {Remedy}");
                    }

                    if (index >= recoverFrom)
                    {
                        entries.Add(Parse(data.Slice(at, size), segment, at));
                    }

                    offsets.Add(at);
                    expected++;
                    at += size;
                    continue;
                }

                if (!isLast)
                {
                    throw new StorageException(
                        $"Segment '{segment.Path}' is damaged at byte {at} ({problem}) and is not the last segment, so committed entries may be lost. {Remedy}");
                }

                var next = LogRecord.FindValid(data[(at + 1)..]);
                if (next >= 0)
                {
                    throw new StorageException(
                        $"Segment '{segment.Path}' is damaged at byte {at} ({problem}) but a valid record follows at byte {at + 1 + next}: this is damage inside the log, not a torn write at its end, and committed entries may be lost. {Remedy}");
                }

                DiskFiles.TruncateDurably(segment.Path, at);
                logger.TornTailDropped(length - at, at, segment.Path, problem, expected - 1);
                length = at;
            }

            segment.Length = length;
            segment.Count = offsets.Count;
            segment.Sparse = Segment.SparseOf(offsets, offsets.Count);
        }

        return new RecoveredLog(segments, entries, segments[0].FirstIndex, expected - 1, segments.Count - firstRead);
    }

    private static LogEntry Parse(ReadOnlySpan<byte> record, Segment segment, int at)
    {
        try
        {
            return LogRecord.Read(record);
        }
        catch (ProtocolException e)
        {
            // A matching checksum over fields that do not parse is not a torn write: a newer format, or a bug.
            throw new StorageException(
                $"Segment '{segment.Path}' has a record at byte {at} whose checksum matches but whose fields do not parse ({e.Message}): was it written by a newer version of Understudy? {Remedy}", e);
        }
    }

    private static int ReadWhole(string path, ref byte[] buffer)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.SequentialScan);
        var size = RandomAccess.GetLength(handle);
        if (size > Array.MaxLength)
        {
            throw new StorageException($"Segment '{path}' is {size} bytes, larger than any segment this log writes. {Remedy}");
        }

        if (buffer.Length < size)
        {
            buffer = new byte[size];
        }

        var read = 0;
        while (read < size)
        {
            var n = RandomAccess.Read(handle, buffer.AsSpan(read, (int)size - read), read);
            if (n == 0)
            {
                break;
            }

            read += n;
        }

        return read;
    }
}

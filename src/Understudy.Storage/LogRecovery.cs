using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>What recovery found: the segments (with record offsets) and every entry, in order.</summary>
internal sealed record RecoveredLog(List<Segment> Segments, List<LogEntry> Entries);

/// <summary>
/// Reads and validates every segment at open. The one repair it makes is cutting a torn tail off the last
/// segment: a write interrupted by a crash leaves a partial or garbled record at the very end, and nothing
/// past it was ever synced, so nothing past it was acknowledged. Damage anywhere else may hit committed
/// entries, and dropping those silently would break "no acknowledged write is lost", so it is an error.
/// </summary>
internal static class LogRecovery
{
    private const string Remedy =
        "Move this data folder aside and restart the server with an empty one so it rejoins as a backup and copies the log from the primary (or restore the folder from a backup).";

    public static RecoveredLog Recover(string directory, ILogger logger)
    {
        var segments = new List<Segment>();
        foreach (var file in Directory.EnumerateFiles(directory, "*" + Segment.Extension))
        {
            if (Segment.TryParseName(Path.GetFileName(file), out var first))
            {
                segments.Add(new Segment(directory, first));
            }
        }

        segments.Sort((a, b) => a.FirstIndex.CompareTo(b.FirstIndex));

        var entries = new List<LogEntry>();
        var buffer = Array.Empty<byte>();
        var expected = 1L;
        for (var i = 0; i < segments.Count; i++)
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

            var data = buffer.AsSpan(0, length);
            var at = 0;
            while (at < length)
            {
                var state = LogRecord.Inspect(data[at..], out var size, out var problem);
                if (state == RecordState.Valid)
                {
                    var entry = Parse(data.Slice(at, size), segment, at);
                    if (entry.Index != expected)
                    {
                        throw new StorageException(
                            $"Segment '{segment.Path}' holds index {entry.Index} at byte {at} where index {expected} belongs: the log is out of order. {Remedy}");
                    }

                    entries.Add(entry);
                    segment.Offsets.Add(at);
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
        }

        return new RecoveredLog(segments, entries);
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

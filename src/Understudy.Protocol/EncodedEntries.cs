namespace Understudy.Protocol;

/// <summary>
/// Consecutive log entries already in their wire encoding, back to back, each exactly as a <see cref="Replicate"/> frame
/// carries it (the index excluded: it follows from the frame's <see cref="Replicate.PrevIndex"/>). A record in a segment
/// file holds these very bytes after its header and index, so the primary copies a backlog read back from disk into a
/// frame as it is, instead of decoding each record into a <see cref="LogEntry"/> (a command array each) and encoding it
/// again on its loop: that was most of the primary's cost of a catch-up (docs/BENCHMARKS.md, "Round 21").
/// </summary>
/// <param name="Count">How many entries <paramref name="Bytes"/> holds.</param>
/// <param name="Bytes">Their encodings, back to back, nothing before, between or after.</param>
public readonly record struct EncodedEntries(int Count, ReadOnlyMemory<byte> Bytes)
{
    /// <summary>Encodes <paramref name="entries"/> (an archive with no stored encoding, tests).</summary>
    public static EncodedEntries Of(ReadOnlySpan<LogEntry> entries)
    {
        var size = 0;
        foreach (ref readonly var e in entries)
        {
            size += e.WireSize;
        }

        var bytes = new byte[size];
        var w = new WireWriter(bytes);
        foreach (ref readonly var e in entries)
        {
            e.Format(ref w);
        }

        return new EncodedEntries(entries.Length, bytes);
    }

    /// <summary>The entries, the first at <paramref name="firstIndex"/>; commands copied out.</summary>
    /// <exception cref="ProtocolException">The bytes are not exactly <see cref="Count"/> well-formed entries.</exception>
    public LogEntry[] Decode(long firstIndex)
    {
        if (Count == 0)
        {
            return [];
        }

        var r = new WireReader(Bytes.Span, "encoded entries");
        var commands = new CommandPieces(Bytes.Length - (Count * LogEntry.WireFixedSize));
        var entries = new LogEntry[Count];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = LogEntry.Parse(ref r, firstIndex + i, ref commands);
        }

        r.End();
        return entries;
    }
}

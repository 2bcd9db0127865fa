using System.Buffers.Binary;
using System.Text;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>The byte layout of message-store commands, queries and results, shared by server and client.</summary>
public static class MessageStoreCommands
{
    public const byte AppendOp = 1;
    public const byte ReadOp = 2;
    public const byte CountOp = 3;

    /// <summary>Most messages one read returns; a client pages for more.</summary>
    public const int MaxReadCount = 10_000;

    /// <summary>
    /// Most message text (UTF-8 bytes) one read returns, so no reply carries, and no side allocates, a long log:
    /// a page stops before the message that would go over this, but always holds at least one message if any is
    /// available (one message is at most <see cref="MessageStore.MaxMessageBytes"/>), so a reader always makes progress.
    /// </summary>
    public const int MaxReadBytes = 1024 * 1024;

    public static byte[] Append(string text)
    {
        var bytes = new byte[1 + Encoding.UTF8.GetByteCount(text)];
        bytes[0] = AppendOp;
        Encoding.UTF8.GetBytes(text, bytes.AsSpan(1));
        return bytes;
    }

    public static byte[] Read(long from, long count)
    {
        var bytes = new byte[17];
        bytes[0] = ReadOp;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(1), from);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(9), count);
        return bytes;
    }

    public static byte[] Count() => [CountOp];

    public static bool TryDecodeAppend(ReadOnlySpan<byte> command, out ReadOnlySpan<byte> text)
    {
        if (command.Length >= 1 && command[0] == AppendOp)
        {
            text = command[1..];
            return true;
        }

        text = default;
        return false;
    }

    public static string DecodeAppendText(ReadOnlySpan<byte> command) =>
        TryDecodeAppend(command, out var text) ? Encoding.UTF8.GetString(text) : string.Empty;

    public static byte[] EncodeSeq(long seq)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, seq);
        return bytes;
    }

    public static long DecodeSeq(ReadOnlySpan<byte> result) =>
        result.Length == 8 ? BinaryPrimitives.ReadInt64LittleEndian(result) : throw new ProtocolException($"a sequence number is 8 bytes, got {result.Length}");

    internal static byte[] EncodeMessages(long from, List<ReadOnlyMemory<byte>> texts)
    {
        var size = 8 + 4;
        foreach (var t in texts)
        {
            size += 4 + t.Length;
        }

        var bytes = new byte[size];
        var w = new WireWriter(bytes);
        w.WriteInt64(from);
        w.WriteInt32(texts.Count);
        foreach (var t in texts)
        {
            w.WriteBytes(t.Span);
        }

        return bytes;
    }

    /// <summary>
    /// The answer to a read below the first retained message: "from" 0, which no page has (pages start at 1 or
    /// later), then the first retained sequence number. A client sees it as <see cref="MessagesRemovedException"/>.
    /// </summary>
    internal static byte[] EncodeRemoved(long firstRetained)
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, 0);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), firstRetained);
        return bytes;
    }

    public static IReadOnlyList<SequencedMessage> DecodeMessages(ReadOnlySpan<byte> result)
    {
        var r = new WireReader(result, "read result");
        var from = r.ReadInt64("from");
        if (from == 0)
        {
            throw new MessagesRemovedException(r.ReadInt64("firstRetained"));
        }

        var count = r.ReadCount("count", 4);
        var list = new List<SequencedMessage>(count);
        for (var i = 0; i < count; i++)
        {
            list.Add(new SequencedMessage(from + i, Encoding.UTF8.GetString(r.ReadBytesSpan("message"))));
        }

        r.End();
        return list;
    }
}

using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>One message of the store, with the sequence number it was acknowledged with.</summary>
public readonly record struct SequencedMessage(long Seq, string Text);

/// <summary>
/// The original project's service, and the default state machine: clients send messages; each gets the next
/// sequence number (from 1). Not to be confused with the replicated log of entries it is built from: a message
/// is the payload of one committed command entry, and its sequence number is not the entry's index.
/// Messages can be read back by range, and counted (the original's <c>messageCount</c>).
/// </summary>
public sealed class MessageStore : IStateMachine
{
    /// <summary>Longest message accepted, in UTF-8 bytes.</summary>
    public const int MaxMessageBytes = 1024 * 1024;

    private readonly List<byte[]> _messages = [];

    /// <summary>Messages in the store.</summary>
    public long Count => _messages.Count;

    /// <summary>The message with sequence number <paramref name="seq"/> (from 1).</summary>
    public string this[long seq] => Encoding.UTF8.GetString(_messages[checked((int)(seq - 1))]);

    /// <inheritdoc />
    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, long index)
    {
        if (MessageStoreCommands.TryDecodeAppend(command, out var text))
        {
            _messages.Add(text.ToArray());
            return MessageStoreCommands.EncodeSeq(_messages.Count);
        }

        // Validate() keeps these out of the log; a log written by a newer version could still hold one.
        return MessageStoreCommands.EncodeSeq(0);
    }

    /// <inheritdoc />
    public string? Validate(ReadOnlySpan<byte> command)
    {
        if (!MessageStoreCommands.TryDecodeAppend(command, out var text))
        {
            return "not a message-store append command";
        }

        return text.Length > MaxMessageBytes ? $"message of {text.Length} bytes is over the limit of {MaxMessageBytes}" : null;
    }

    /// <inheritdoc />
    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query)
    {
        if (query.Length >= 1 && query[0] == MessageStoreCommands.CountOp)
        {
            return MessageStoreCommands.EncodeSeq(_messages.Count);
        }

        if (query.Length == 17 && query[0] == MessageStoreCommands.ReadOp)
        {
            var from = Math.Max(1, BinaryPrimitives.ReadInt64LittleEndian(query[1..]));
            var count = BinaryPrimitives.ReadInt64LittleEndian(query[9..]);
            var available = Math.Max(0, _messages.Count - (from - 1));
            var n = MessageStoreCommands.PageLength(_messages, (int)Math.Min(from - 1, _messages.Count), (int)Math.Clamp(count, 0, Math.Min(available, MessageStoreCommands.MaxReadCount)));
            return MessageStoreCommands.EncodeMessages(from, _messages, (int)(from - 1), n);
        }

        return MessageStoreCommands.EncodeSeq(-1);
    }

    /// <inheritdoc />
    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var header = writer.GetSpan(8);
        BinaryPrimitives.WriteInt64LittleEndian(header, _messages.Count);
        writer.Advance(8);
        foreach (var m in _messages)
        {
            var span = writer.GetSpan(4 + m.Length);
            BinaryPrimitives.WriteInt32LittleEndian(span, m.Length);
            m.CopyTo(span[4..]);
            writer.Advance(4 + m.Length);
        }
    }

    /// <inheritdoc />
    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        _messages.Clear();
        var r = new WireReader(snapshot, "message-store snapshot");
        var count = r.ReadInt64("count");
        for (long i = 0; i < count; i++)
        {
            _messages.Add(r.ReadBytes("message"));
        }

        r.End();
    }

    /// <summary>All messages, in order (tests and the simulator's final check).</summary>
    public IReadOnlyList<SequencedMessage> ToList() =>
        [.. _messages.Select((m, i) => new SequencedMessage(i + 1, Encoding.UTF8.GetString(m)))];
}

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

    /// <summary>How many of the <paramref name="wanted"/> messages from <paramref name="start"/> fit in one reply under <see cref="MaxReadBytes"/>.</summary>
    internal static int PageLength(List<byte[]> messages, int start, int wanted)
    {
        var bytes = 0L;
        for (var i = 0; i < wanted; i++)
        {
            bytes += messages[start + i].Length;
            if (bytes > MaxReadBytes && i > 0)
            {
                return i;
            }
        }

        return wanted;
    }

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

    internal static byte[] EncodeMessages(long from, List<byte[]> messages, int start, int count)
    {
        var size = 8 + 4;
        for (var i = 0; i < count; i++)
        {
            size += 4 + messages[start + i].Length;
        }

        var bytes = new byte[size];
        var w = new WireWriter(bytes);
        w.WriteInt64(from);
        w.WriteInt32(count);
        for (var i = 0; i < count; i++)
        {
            w.WriteBytes(messages[start + i]);
        }

        return bytes;
    }

    public static IReadOnlyList<SequencedMessage> DecodeMessages(ReadOnlySpan<byte> result)
    {
        var r = new WireReader(result, "read result");
        var from = r.ReadInt64("from");
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

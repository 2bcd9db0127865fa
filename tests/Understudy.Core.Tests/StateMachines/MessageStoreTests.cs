using System.Buffers;

namespace Understudy.Core.Tests.StateMachines;

/// <summary>The original project's service: numbered messages, read back by range and counted.</summary>
public class MessageStoreTests
{
    [Fact]
    public void MessageStore_numbers_appends_from_one_and_reads_and_counts_them()
    {
        var log = new MessageStore();

        Assert.Equal(1, MessageStoreCommands.DecodeSeq(log.Apply(MessageStoreCommands.Append("a"), new ApplyContext(5, 0)).Span));
        Assert.Equal(2, MessageStoreCommands.DecodeSeq(log.Apply(MessageStoreCommands.Append("b"), new ApplyContext(6, 0)).Span));
        Assert.Equal(3, MessageStoreCommands.DecodeSeq(log.Apply(MessageStoreCommands.Append("c"), new ApplyContext(9, 0)).Span));

        Assert.Equal(3, log.Count);
        Assert.Equal("b", log[2]);
        Assert.Equal(3, MessageStoreCommands.DecodeSeq(log.Query(MessageStoreCommands.Count()).Span));
        Assert.Equal([new SequencedMessage(2, "b"), new SequencedMessage(3, "c")], MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(2, 10)).Span));
        Assert.Equal([new SequencedMessage(1, "a")], MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(1, 1)).Span));
        Assert.Empty(MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(4, 10)).Span));
    }

    [Fact]
    public void MessageStore_query_does_not_change_the_state()
    {
        var log = new MessageStore();
        log.Apply(MessageStoreCommands.Append("a"), new ApplyContext(1, 0));
        var before = Snapshot(log);

        log.Query(MessageStoreCommands.Count());
        log.Query(MessageStoreCommands.Read(1, 100));

        Assert.Equal(before, Snapshot(log));
    }

    [Fact]
    public void MessageStore_validates_commands_before_they_are_logged()
    {
        var log = new MessageStore();

        Assert.Null(log.Validate(MessageStoreCommands.Append("fine")));
        Assert.NotNull(log.Validate([]));
        Assert.NotNull(log.Validate(MessageStoreCommands.Count()));
        Assert.NotNull(log.Validate(MessageStoreCommands.Append(new string('x', MessageStore.MaxMessageBytes + 1))));
    }

    [Fact]
    public void MessageStore_snapshot_then_restore_gives_identical_bytes()
    {
        // The store's data is the log: both stores read it from the same one, the snapshot only says where messages are.
        var entries = new ReplicatedLog();
        var log = new MessageStore();
        log.AttachLog(entries);
        var index = 0L;
        foreach (var text in new[] { "first", string.Empty, "ünïcödé ✓", new string('z', 5000) })
        {
            var entry = new LogEntry(++index, 1, EntryKind.Command, 1, index, index, MessageStoreCommands.Append(text), 0);
            entries.Append(entry);
            log.Apply(entry.Command.Span, new ApplyContext(entry.Index, 0));
        }

        var snapshot = Snapshot(log);
        var restored = new MessageStore();
        restored.AttachLog(entries);
        restored.Apply(MessageStoreCommands.Append("to be replaced"), new ApplyContext(1, 0));
        restored.Restore(snapshot);

        Assert.Equal(snapshot, Snapshot(restored));
        Assert.Equal(log.ToList(), restored.ToList());
        Assert.Equal(5, MessageStoreCommands.DecodeSeq(restored.Apply(MessageStoreCommands.Append("next"), new ApplyContext(5, 0)).Span));
    }

    [Fact]
    public void MessageStore_read_is_capped_by_count()
    {
        var log = new MessageStore();
        for (var i = 0; i < MessageStoreCommands.MaxReadCount + 5; i++)
        {
            log.Apply(MessageStoreCommands.Append("m"), new ApplyContext(i + 1, 0));
        }

        var page = MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(1, long.MaxValue)).Span);
        Assert.Equal(MessageStoreCommands.MaxReadCount, page.Count);
        Assert.Equal(1, page[0].Seq);
        var rest = MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(page.Count + 1, long.MaxValue)).Span);
        Assert.Equal(Enumerable.Range(MessageStoreCommands.MaxReadCount + 1, 5).Select(i => (long)i), rest.Select(m => m.Seq));
    }

    [Fact]
    public void MessageStore_read_is_capped_by_bytes_and_pages_through_the_whole_log()
    {
        var log = new MessageStore();
        var text = new string('x', 100 * 1024);
        for (var i = 0; i < 25; i++)
        {
            log.Apply(MessageStoreCommands.Append(text + i), new ApplyContext(i + 1, 0));
        }

        var reply = log.Query(MessageStoreCommands.Read(1, 1000));
        Assert.True(reply.Length < MessageStoreCommands.MaxReadBytes + 64 * 1024, $"a reply of {reply.Length} bytes");
        var first = MessageStoreCommands.DecodeMessages(reply.Span);
        Assert.Equal(MessageStoreCommands.MaxReadBytes / (text.Length + 2), first.Count);

        var all = new List<SequencedMessage>();
        while (MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(all.Count + 1, 1000)).Span) is { Count: > 0 } page)
        {
            Assert.True(page.Sum(m => m.Text.Length) <= MessageStoreCommands.MaxReadBytes);
            all.AddRange(page);
        }

        Assert.Equal(log.ToList(), all);
    }

    [Fact]
    public void MessageStore_read_returns_one_huge_message_at_a_time()
    {
        var log = new MessageStore();
        var huge = new string('h', MessageStore.MaxMessageBytes);
        log.Apply(MessageStoreCommands.Append("small"), new ApplyContext(1, 0));
        log.Apply(MessageStoreCommands.Append(huge), new ApplyContext(2, 0));
        log.Apply(MessageStoreCommands.Append(huge), new ApplyContext(3, 0));
        log.Apply(MessageStoreCommands.Append("tail"), new ApplyContext(4, 0));

        Assert.Equal([new SequencedMessage(1, "small")], MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(1, 10)).Span));
        Assert.Equal([new SequencedMessage(2, huge)], MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(2, 10)).Span));
        Assert.Equal([new SequencedMessage(3, huge)], MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(3, 10)).Span));
        Assert.Equal([new SequencedMessage(4, "tail")], MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(4, 10)).Span));
        Assert.Empty(MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(5, 10)).Span));
        Assert.Empty(MessageStoreCommands.DecodeMessages(log.Query(MessageStoreCommands.Read(long.MaxValue, 10)).Span));
    }

    private static byte[] Snapshot(MessageStore log)
    {
        var buffer = new ArrayBufferWriter<byte>();
        log.WriteSnapshot(buffer);
        return buffer.WrittenSpan.ToArray();
    }
}

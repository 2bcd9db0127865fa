using System.Buffers;
using Understudy.Core.StateMachines;

namespace Understudy.Core.Tests.StateMachines;

/// <summary>The original project's service: numbered messages, read back by range and counted.</summary>
public class MessageLogTests
{
    [Fact]
    public void MessageLog_numbers_appends_from_one_and_reads_and_counts_them()
    {
        var log = new MessageLog();

        Assert.Equal(1, MessageLogCommands.DecodeSeq(log.Apply(MessageLogCommands.Append("a"), 5).Span));
        Assert.Equal(2, MessageLogCommands.DecodeSeq(log.Apply(MessageLogCommands.Append("b"), 6).Span));
        Assert.Equal(3, MessageLogCommands.DecodeSeq(log.Apply(MessageLogCommands.Append("c"), 9).Span));

        Assert.Equal(3, log.Count);
        Assert.Equal("b", log[2]);
        Assert.Equal(3, MessageLogCommands.DecodeSeq(log.Query(MessageLogCommands.Count()).Span));
        Assert.Equal([new LoggedMessage(2, "b"), new LoggedMessage(3, "c")], MessageLogCommands.DecodeMessages(log.Query(MessageLogCommands.Read(2, 10)).Span));
        Assert.Equal([new LoggedMessage(1, "a")], MessageLogCommands.DecodeMessages(log.Query(MessageLogCommands.Read(1, 1)).Span));
        Assert.Empty(MessageLogCommands.DecodeMessages(log.Query(MessageLogCommands.Read(4, 10)).Span));
    }

    [Fact]
    public void MessageLog_query_does_not_change_the_state()
    {
        var log = new MessageLog();
        log.Apply(MessageLogCommands.Append("a"), 1);
        var before = Snapshot(log);

        log.Query(MessageLogCommands.Count());
        log.Query(MessageLogCommands.Read(1, 100));

        Assert.Equal(before, Snapshot(log));
    }

    [Fact]
    public void MessageLog_validates_commands_before_they_are_logged()
    {
        var log = new MessageLog();

        Assert.Null(log.Validate(MessageLogCommands.Append("fine")));
        Assert.NotNull(log.Validate([]));
        Assert.NotNull(log.Validate(MessageLogCommands.Count()));
        Assert.NotNull(log.Validate(MessageLogCommands.Append(new string('x', MessageLog.MaxMessageBytes + 1))));
    }

    [Fact]
    public void MessageLog_snapshot_then_restore_gives_identical_bytes()
    {
        var log = new MessageLog();
        foreach (var text in new[] { "first", string.Empty, "ünïcödé ✓", new string('z', 5000) })
        {
            log.Apply(MessageLogCommands.Append(text), 1);
        }

        var snapshot = Snapshot(log);
        var restored = new MessageLog();
        restored.Apply(MessageLogCommands.Append("to be replaced"), 1);
        restored.Restore(snapshot);

        Assert.Equal(snapshot, Snapshot(restored));
        Assert.Equal(log.ToList(), restored.ToList());
        Assert.Equal(5, MessageLogCommands.DecodeSeq(restored.Apply(MessageLogCommands.Append("next"), 2).Span));
    }

    private static byte[] Snapshot(MessageLog log)
    {
        var buffer = new ArrayBufferWriter<byte>();
        log.WriteSnapshot(buffer);
        return buffer.WrittenSpan.ToArray();
    }
}

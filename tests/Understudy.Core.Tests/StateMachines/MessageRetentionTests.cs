using System.Buffers;

namespace Understudy.Core.Tests.StateMachines;

/// <summary>The message store over the log: an index of runs instead of message text, and retention that keeps what it promises.</summary>
public class MessageRetentionTests
{
    /// <summary>A log with the store attached; every third entry is an epoch start, so messages sit in several runs.</summary>
    private sealed class Store
    {
        public Store(MessageRetention? retention = null)
        {
            Machine = new MessageStore(retention ?? MessageRetention.KeepEverything);
            Machine.AttachLog(Log);
        }

        public ReplicatedLog Log { get; } = new();

        public MessageStore Machine { get; }

        public long Write(string text, long logTimeMs = 0)
        {
            if (Log.LastIndex % 3 == 2)
            {
                Log.Append(new LogEntry(Log.LastIndex + 1, 1, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty, logTimeMs));
            }

            var entry = new LogEntry(Log.LastIndex + 1, 1, EntryKind.Command, 1, Log.LastIndex + 1, 0, MessageStoreCommands.Append(text), logTimeMs);
            Log.Append(entry);
            return MessageStoreCommands.DecodeSeq(Machine.Apply(entry.Command.Span, new ApplyContext(entry.Index, logTimeMs)).Span);
        }

        public IReadOnlyList<SequencedMessage> Read(long from, long count) =>
            MessageStoreCommands.DecodeMessages(Machine.Query(MessageStoreCommands.Read(from, count)).Span);
    }

    [Fact]
    public void Messages_are_read_back_from_the_log_across_runs_and_the_snapshot_holds_no_text()
    {
        var store = new Store();
        for (var i = 1; i <= 100; i++)
        {
            Assert.Equal(i, store.Write($"message {i} " + new string('x', 200)));
        }

        Assert.Equal(50, store.Machine.RunCount);
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"message {i} " + new string('x', 200)), store.Read(1, 1000).Select(m => m.Text));
        Assert.Equal([41, 42, 43], store.Read(41, 3).Select(m => m.Seq));
        Assert.StartsWith("message 77 ", store.Machine[77], StringComparison.Ordinal);

        var snapshot = new ArrayBufferWriter<byte>();
        store.Machine.WriteSnapshot(snapshot);
        Assert.True(snapshot.WrittenCount < 50 * 24 + 64, $"a snapshot of {snapshot.WrittenCount} bytes for 50 runs holds more than the runs");
    }

    [Fact]
    public void Retention_by_messages_keeps_exactly_the_newest_N_and_a_read_before_them_is_told_so()
    {
        var store = new Store(new MessageRetention { Messages = 10 });
        for (var i = 1; i <= 95; i++)
        {
            store.Write($"m{i}");
        }

        Assert.Equal(86, store.Machine.FirstRetained);
        Assert.Equal(95, store.Machine.Count);
        Assert.Equal(Enumerable.Range(86, 10).Select(i => $"m{i}"), store.Read(86, 100).Select(m => m.Text));
        Assert.Equal(Enumerable.Range(86, 10).Select(i => (long)i), store.Machine.ToList().Select(m => m.Seq));
        Assert.True(store.Machine.RunCount <= 6, $"{store.Machine.RunCount} runs kept for 10 messages");

        var removed = Assert.Throws<MessagesRemovedException>(() => store.Read(85, 10));
        Assert.Equal(86, removed.FirstRetained);
        Assert.Equal("messages before 86 were removed by retention (first retained: 86)", removed.Message);

        // The log may be compacted up to (not past) the first retained message's entry.
        Assert.Equal("m86", MessageStoreCommands.DecodeAppendText(store.Log[store.Machine.RetainedFromIndex].Command.Span));
    }

    [Fact]
    public void Retention_by_bytes_keeps_the_newest_messages_that_fit()
    {
        var store = new Store(new MessageRetention { Bytes = 1000 });
        for (var i = 1; i <= 60; i++)
        {
            store.Write(new string((char)('a' + (i % 26)), 90 + (i % 7)));
        }

        var kept = store.Machine.ToList();
        var bytes = kept.Sum(m => m.Text.Length);
        Assert.True(bytes <= 1000, $"{bytes} bytes retained, limit 1000");

        // One more older message would not have fit: the floor is as low as the promise allows.
        var previous = 90 + ((store.Machine.FirstRetained - 1) % 7);
        Assert.True(bytes + previous > 1000, $"message {store.Machine.FirstRetained - 1} ({previous} bytes) would have fit beside {bytes}");
        Assert.Equal(60, kept[^1].Seq);
    }

    [Fact]
    public void Retention_is_decided_from_the_log_alone_so_replicas_and_a_restored_copy_agree()
    {
        var a = new Store(new MessageRetention { Messages = 7, Bytes = 500 });
        var b = new Store(new MessageRetention { Messages = 7, Bytes = 500 });
        for (var i = 1; i <= 40; i++)
        {
            var text = new string('q', (i * 37) % 150);
            a.Write(text);
            b.Write(text);
        }

        var snapshotA = new ArrayBufferWriter<byte>();
        a.Machine.WriteSnapshot(snapshotA);
        var snapshotB = new ArrayBufferWriter<byte>();
        b.Machine.WriteSnapshot(snapshotB);
        Assert.Equal(snapshotA.WrittenSpan.ToArray(), snapshotB.WrittenSpan.ToArray());

        var restored = new MessageStore(new MessageRetention { Messages = 7, Bytes = 500 });
        restored.AttachLog(a.Log);
        restored.Restore(snapshotA.WrittenSpan);
        Assert.Equal(a.Machine.ToList(), restored.ToList());
        Assert.Equal(a.Machine.FirstRetained, restored.FirstRetained);
    }
    [Fact]
    public void Retention_by_age_keeps_exactly_the_messages_within_the_age_of_the_newest_by_log_time()
    {
        // One message a second (log time), several per second at times; keep 10 s.
        var store = new Store(new MessageRetention { MaxAge = TimeSpan.FromSeconds(10) });
        var times = new List<long>();
        var t = 1_000_000L;
        for (var i = 1; i <= 200; i++)
        {
            t += i % 4 == 0 ? 0 : 1000;
            times.Add(t);
            store.Write($"m{i}", t);

            // After every write: exactly the messages no older than newest - 10 s are held.
            var horizon = t - 10_000;
            var expectedFirst = times.FindIndex(x => x >= horizon) + 1;
            Assert.Equal(expectedFirst, store.Machine.FirstRetained);
        }

        var kept = store.Machine.ToList();
        Assert.All(kept, m => Assert.True(times[(int)m.Seq - 1] >= t - 10_000, $"message {m.Seq} at {times[(int)m.Seq - 1]} is older than {t - 10_000}"));
        Assert.Equal(times.Count(x => x >= t - 10_000), kept.Count);
        Assert.Throws<MessagesRemovedException>(() => store.Read(store.Machine.FirstRetained - 1, 1));
    }

    [Fact]
    public void Retention_by_age_removes_nothing_while_the_log_time_stands_still_and_everything_but_the_newest_after_a_long_gap()
    {
        var store = new Store(new MessageRetention { MaxAge = TimeSpan.FromMinutes(1) });
        for (var i = 1; i <= 50; i++)
        {
            store.Write($"m{i}", 5_000);
        }

        Assert.Equal(1, store.Machine.FirstRetained);

        // An hour later (by the log): all 50 are older than the age; the new one stays.
        store.Write("late", 5_000 + 3_600_000);
        Assert.Equal(51, store.Machine.FirstRetained);
        Assert.Equal(["late"], store.Machine.ToList().Select(m => m.Text));
    }

    [Fact]
    public void Retention_by_age_decides_the_same_after_a_restore_from_a_snapshot()
    {
        var a = new Store(new MessageRetention { MaxAge = TimeSpan.FromSeconds(5) });
        for (var i = 1; i <= 30; i++)
        {
            a.Write($"m{i}", i * 1000L);
        }

        var snapshot = new ArrayBufferWriter<byte>();
        a.Machine.WriteSnapshot(snapshot);
        var b = new MessageStore(new MessageRetention { MaxAge = TimeSpan.FromSeconds(5) });
        b.AttachLog(a.Log);
        b.Restore(snapshot.WrittenSpan);

        // Both apply the same next entries: the restored one must remove the same messages.
        for (var i = 31; i <= 40; i++)
        {
            var entry = new LogEntry(a.Log.LastIndex + 1, 1, EntryKind.Command, 1, a.Log.LastIndex + 1, 0, MessageStoreCommands.Append($"m{i}"), i * 1000L);
            a.Log.Append(entry);
            a.Machine.Apply(entry.Command.Span, new ApplyContext(entry.Index, entry.LogTimeMs));
            b.Apply(entry.Command.Span, new ApplyContext(entry.Index, entry.LogTimeMs));
            Assert.Equal(a.Machine.FirstRetained, b.FirstRetained);
        }

        Assert.Equal(35, b.FirstRetained);
    }

    [Fact]
    public void Retention_by_age_refuses_a_zero_age()
    {
        Assert.Throws<ArgumentException>(() => new MessageStore(new MessageRetention { MaxAge = TimeSpan.Zero }));
    }
}

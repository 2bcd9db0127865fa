namespace Understudy.Core.Tests.StateMachines;

/// <summary>What committed entries are applied to: in log order only, each write once.</summary>
public class ReplicatedStateTests
{
    [Fact]
    public void ReplicatedState_applies_in_order_only()
    {
        var state = new ReplicatedState(new MessageStore());

        Assert.Throws<InvalidOperationException>(() => state.Apply(Write(2, client: 1, seq: 1, "b")));
        state.Apply(Write(1, client: 1, seq: 1, "a"));
        Assert.Throws<InvalidOperationException>(() => state.Apply(Write(1, client: 1, seq: 1, "a")));
        Assert.Throws<InvalidOperationException>(() => state.Apply(Write(3, client: 1, seq: 2, "c")));

        Assert.Equal(1, state.AppliedIndex);
        Assert.Equal(1, ((MessageStore)state.Machine).Count);
    }

    [Fact]
    public void ReplicatedState_applies_a_duplicated_write_once_and_returns_the_first_result()
    {
        var state = new ReplicatedState(new MessageStore());
        var first = state.Apply(Write(1, client: 9, seq: 4, "a"));
        state.Apply(Write(2, client: 8, seq: 1, "b"));

        var again = state.Apply(Write(3, client: 9, seq: 4, "a"));

        Assert.Equal(first.ToArray(), again.ToArray());
        Assert.Equal(2, ((MessageStore)state.Machine).Count);
        Assert.Equal(3, state.AppliedIndex);
    }

    [Fact]
    public void ReplicatedState_epoch_start_entries_advance_the_index_without_touching_the_machine()
    {
        var state = new ReplicatedState(new MessageStore());

        state.Apply(new LogEntry(1, 2, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty, 0));

        Assert.Equal(1, state.AppliedIndex);
        Assert.Equal(0, ((MessageStore)state.Machine).Count);
        Assert.Equal(0, state.Sessions.Count);
    }

    [Fact]
    public void ReplicatedState_snapshot_then_restore_gives_identical_bytes_and_keeps_deduplicating()
    {
        var state = new ReplicatedState(new MessageStore());
        state.Apply(Write(1, client: 1, seq: 1, "a"));
        state.Apply(Write(2, client: 2, seq: 1, "b"));
        state.Apply(Write(3, client: 1, seq: 2, "c", firstIncomplete: 2));
        var snapshot = state.SnapshotBytes();

        var restored = new ReplicatedState(new MessageStore());
        restored.Restore(snapshot);

        Assert.Equal(snapshot, restored.SnapshotBytes());
        Assert.Equal(3, restored.AppliedIndex);
        var retried = restored.Apply(Write(4, client: 2, seq: 1, "b"));
        Assert.Equal(2, MessageStoreCommands.DecodeSeq(retried.Span));
        Assert.Equal(3, ((MessageStore)restored.Machine).Count);
        Assert.Equal(DedupLookup.Forgotten, restored.Sessions.Lookup(1, 1, out _));
    }

    private static LogEntry Write(long index, ulong client, long seq, string text, long? firstIncomplete = null) =>
        new(index, 1, EntryKind.Command, client, seq, firstIncomplete ?? 1, MessageStoreCommands.Append(text), 0);
}

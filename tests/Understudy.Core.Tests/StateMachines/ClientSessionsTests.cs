namespace Understudy.Core.Tests.StateMachines;

/// <summary>The deduplication table: a write named (client, seq) is applied once, and every server forgets the same things.</summary>
public class ClientSessionsTests
{
    [Fact]
    public void ClientSessions_duplicate_returns_the_first_result()
    {
        var sessions = new ClientSessions(10);

        Assert.True(sessions.TryBegin(7, 1, 1, 1, out _));
        sessions.Complete(7, 1, Cluster.Text("first"));

        Assert.False(sessions.TryBegin(7, 1, 1, 2, out var previous));
        Assert.Equal("first"u8.ToArray(), previous.ToArray());
        Assert.Equal(DedupLookup.Applied, sessions.Lookup(7, 1, out var looked));
        Assert.Equal("first"u8.ToArray(), looked.ToArray());
        Assert.Equal(DedupLookup.New, sessions.Lookup(7, 2, out _));
        Assert.Equal(DedupLookup.New, sessions.Lookup(8, 1, out _));
    }

    [Fact]
    public void ClientSessions_drop_results_below_first_incomplete_and_never_apply_such_a_retry_again()
    {
        var sessions = new ClientSessions(10);
        Assert.True(sessions.TryBegin(7, 1, 1, 1, out _));
        sessions.Complete(7, 1, Cluster.Text("r1"));

        // The client's next write says it has its answer to 1.
        Assert.True(sessions.TryBegin(7, 2, 2, 2, out _));
        sessions.Complete(7, 2, Cluster.Text("r2"));

        Assert.Equal(DedupLookup.Forgotten, sessions.Lookup(7, 1, out _));
        Assert.False(sessions.TryBegin(7, 1, 1, 3, out _), "a retry below the watermark must not be applied again");
        Assert.Equal(DedupLookup.Applied, sessions.Lookup(7, 2, out _));
    }

    [Fact]
    public void ClientSessions_a_write_first_seen_below_the_watermark_is_never_applied()
    {
        var sessions = new ClientSessions(10);
        Assert.True(sessions.TryBegin(7, 1, 1, 1, out _));
        Assert.True(sessions.TryBegin(7, 5, 5, 2, out _));

        // A delayed copy of an older request the client already gave up on.
        Assert.False(sessions.TryBegin(7, 3, 3, 3, out _));
    }

    [Fact]
    public void ClientSessions_evict_the_least_recently_used_by_log_position()
    {
        var sessions = new ClientSessions(2);
        Begin(sessions, client: 1, seq: 1, index: 1);
        Begin(sessions, client: 2, seq: 1, index: 2);
        Begin(sessions, client: 1, seq: 2, index: 3); // client 1 used again, after client 2
        Begin(sessions, client: 3, seq: 1, index: 4);

        Assert.Equal(2, sessions.Count);
        Assert.Equal(DedupLookup.Expired, sessions.Lookup(2, 1, out _)); // evicted (the least recent): its retry is refused, not applied again
        Assert.Equal(DedupLookup.Applied, sessions.Lookup(1, 2, out _));
        Assert.Equal(DedupLookup.Applied, sessions.Lookup(3, 1, out _));
    }

    [Fact]
    public void ClientSessions_eviction_is_the_same_on_every_server_that_applies_the_same_log()
    {
        var random = new Random(3);
        var log = Enumerable.Range(1, 500).Select(i => (Client: (ulong)random.Next(1, 40), Index: (long)i)).ToList();
        var a = new ReplicatedState(new MessageStore(), maxSessions: 8);
        var b = new ReplicatedState(new MessageStore(), maxSessions: 8);

        foreach (var (client, index) in log)
        {
            var entry = new Understudy.Protocol.LogEntry(index, 1, Understudy.Protocol.EntryKind.Command, client, index, 1, MessageStoreCommands.Append($"{client}:{index}"), 0);
            a.Apply(entry);
            b.Apply(entry);
        }

        Assert.Equal(8, a.Sessions.Count);
        Assert.Equal(a.SnapshotBytes(), b.SnapshotBytes());
    }

    [Fact]
    public void ClientSessions_drop_every_result_below_the_watermark_when_pipelined_writes_complete_out_of_order_and_after_a_restore()
    {
        // Pipelined writers: the log holds a session's seqs out of order, and the watermark passes some results but not
        // others. The table skips its scan while no result is below the watermark, so what it keeps (the snapshot)
        // must still equal a table that holds exactly the results at or above it.
        var sessions = new ReplicatedState(new MessageStore());
        var index = 0L;
        void Apply(long seq, long firstIncomplete) =>
            sessions.Apply(new Understudy.Protocol.LogEntry(++index, 1, Understudy.Protocol.EntryKind.Command, 7, seq, firstIncomplete, MessageStoreCommands.Append($"w{seq}"), 0));

        Apply(5, 1);
        Apply(3, 1);
        Apply(4, 1);
        Apply(6, 4);
        Assert.Equal(DedupLookup.Forgotten, sessions.Sessions.Lookup(7, 3, out _));
        Assert.Equal(DedupLookup.Applied, sessions.Sessions.Lookup(7, 4, out _));

        var restored = new ReplicatedState(new MessageStore());
        restored.Restore(sessions.SnapshotBytes());
        Apply(2, 5);
        restored.Apply(new Understudy.Protocol.LogEntry(index, 1, Understudy.Protocol.EntryKind.Command, 7, 2, 5, MessageStoreCommands.Append("w2"), 0));
        Assert.Equal(sessions.SnapshotBytes(), restored.SnapshotBytes());
        Assert.Equal(2, CountResults(sessions));
        Assert.Equal(DedupLookup.Forgotten, sessions.Sessions.Lookup(7, 4, out _));
        Assert.Equal(DedupLookup.Applied, sessions.Sessions.Lookup(7, 5, out _));
        Assert.Equal(DedupLookup.Applied, sessions.Sessions.Lookup(7, 6, out _));
    }

    // The results a table keeps, read from its snapshot: the one session's result count.
    private static int CountResults(ReplicatedState state) =>
        System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(state.SnapshotBytes().AsSpan(16 + 4 + 8 + 8 + 8 + 8));

    private static void Begin(ClientSessions sessions, ulong client, long seq, long index)
    {
        Assert.True(sessions.TryBegin(client, seq, seq, index, out _));
        sessions.Complete(client, seq, Cluster.Text($"{client}/{seq}"));
    }
}

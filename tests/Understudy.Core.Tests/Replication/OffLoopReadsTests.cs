using System.Buffers;
using System.Text;
using Understudy.Core.StateMachines.KeyValue;
using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// Gets answered on the thread that decoded them (<see cref="OffLoopReads"/>): served only when the loop would serve
/// them, from what the loop applied, and left to the loop in every other case.
/// </summary>
public class OffLoopReadsTests
{
    private static readonly ClientRef C1 = new(1);
    private static readonly ClientRef C2 = new(2);

    [Fact]
    public void A_leased_primary_answers_a_get_off_the_loop_with_every_write_it_applied()
    {
        var p = StartKeyValuePrimary();
        p.Request(C1, new ClientRequest(42, 1, 1, RequestKind.Write, KeyValueCommands.Put("k", "v1")));
        Commit(p, 2);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);

        Assert.True(p.Node.Reads.TryAnswer(Get(43, 1, "k"), out var answer));
        Assert.Equal(ResponseStatus.Ok, answer.Status);
        Assert.Equal((43UL, 1L, 1L, P), (answer.ClientId, answer.Seq, answer.Epoch, answer.Primary));
        var result = KeyValueCommands.DecodeResult(answer.Payload.Span);
        Assert.Equal((KeyValueStatus.Ok, "v1", 2L), (result.Status, Encoding.UTF8.GetString(result.Value.Span), result.Version));

        // Off the loop means no reply through the node: the caller sends the answer.
        Assert.Empty(p.Env.RepliesTo(C2));
    }

    [Fact]
    public void A_backup_or_a_primary_whose_epoch_has_not_committed_leaves_the_get_to_the_loop()
    {
        var backup = new ServerHarness(B1, stateMachine: new KeyValueStore());
        backup.Push(Config(1, 5, P, All));
        Assert.False(backup.Node.Reads.TryAnswer(Get(42, 1, "k"), out _));

        var primary = new ServerHarness(P, stateMachine: new KeyValueStore());
        primary.Push(Config(1, 5, P, All));
        Assert.True(primary.Node.HasLease);
        Assert.False(primary.Node.Reads.TryAnswer(Get(42, 1, "k"), out _));

        Commit(primary, 1);
        Assert.True(primary.Node.Reads.TryAnswer(Get(42, 2, "k"), out _));
    }

    [Fact]
    public void A_lease_that_ran_out_is_caught_on_the_reading_thread_before_the_loop_notices()
    {
        var p = StartKeyValuePrimary();
        Assert.True(p.Node.Reads.TryAnswer(Get(42, 1, "k"), out _));

        // No tick, no flush: nothing republished. The reader's own clock says the lease (90 % of 500 ms) is over.
        p.Time.Advance(TimeSpan.FromMilliseconds(460));
        Assert.False(p.Node.Reads.TryAnswer(Get(42, 2, "k"), out _));

        // The loop refuses it too, and a renewal brings the fast path back.
        p.Request(C1, Get(42, 2, "k"));
        Assert.Equal(ResponseStatus.Unavailable, Single(p.Env.RepliesTo(C1)).Status);
        p.HeartbeatAck();
        Assert.True(p.Node.Reads.TryAnswer(Get(42, 3, "k"), out _));
    }

    [Fact]
    public void A_switchover_stops_gets_off_the_loop_at_once_and_a_stale_read_or_a_machine_without_concurrent_queries_never_takes_it()
    {
        var p = StartKeyValuePrimary();
        p.Deliver(new StepDown(1, B1));
        Assert.False(p.Node.Reads.TryAnswer(Get(42, 1, "k"), out _));

        var q = StartKeyValuePrimary();
        var stale = new ClientRequest(42, 1, 1, RequestKind.StaleRead, StaleReadPayload.Encode(TimeSpan.FromSeconds(1), KeyValueCommands.Get("k")));
        Assert.False(q.Node.Reads.TryAnswer(stale, out _));

        var messages = StartPrimary();
        Assert.False(messages.Node.Reads.Enabled);
        Assert.False(messages.Node.Reads.TryAnswer(new ClientRequest(42, 1, 1, RequestKind.Read, MessageStoreCommands.Count()), out _));
    }

    [Fact]
    public void An_answer_whose_query_overlapped_a_withdrawal_is_discarded()
    {
        var machine = new InterruptedStore();
        var p = StartKeyValuePrimary(machine);

        // A switchover begins on the loop while the get is being answered: the answer must not be used.
        machine.DuringQuery = () => p.Deliver(new StepDown(1, B1));
        Assert.False(p.Node.Reads.TryAnswer(Get(42, 1, "k"), out _));
        Assert.Equal(1, machine.Queries);
    }

    [Fact]
    public void A_renewed_lease_does_not_void_an_answer_in_flight()
    {
        var machine = new InterruptedStore();
        var p = StartKeyValuePrimary(machine);
        machine.DuringQuery = () =>
        {
            p.Time.Advance(TimeSpan.FromMilliseconds(10));
            p.HeartbeatAck();
        };

        Assert.True(p.Node.Reads.TryAnswer(Get(42, 1, "k"), out var answer));
        Assert.Equal(KeyValueStatus.NotFound, KeyValueCommands.DecodeResult(answer.Payload.Span).Status);
    }

    private static ServerHarness StartKeyValuePrimary(IStateMachine? machine = null) => StartPrimary(stateMachine: machine ?? new KeyValueStore());

    private static ClientRequest Get(ulong clientId, long seq, string key) => new(clientId, seq, seq, RequestKind.Read, KeyValueCommands.Get(key));

    /// <summary>Commits through <paramref name="index"/>: the primary's disk syncs and both backups acknowledge.</summary>
    private static void Commit(ServerHarness p, long index)
    {
        p.SyncDisk();
        p.AckFrom(B1, index);
        p.AckFrom(B2, index);
    }

    /// <summary>A key-value store that runs a test's action in the middle of a concurrent query (another thread's work, interleaved).</summary>
    private sealed class InterruptedStore : IStateMachine, IConcurrentQueries
    {
        private readonly KeyValueStore _inner = new();

        public Action? DuringQuery { get; set; }

        public int Queries { get; private set; }

        public ReadOnlyMemory<byte> QueryConcurrently(ReadOnlySpan<byte> query)
        {
            Queries++;
            var answer = _inner.QueryConcurrently(query);
            DuringQuery?.Invoke();
            return answer;
        }

        public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context) => _inner.Apply(command, context);

        public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query) => _inner.Query(query);

        public string? Validate(ReadOnlySpan<byte> command) => _inner.Validate(command);

        public void WriteSnapshot(IBufferWriter<byte> writer) => _inner.WriteSnapshot(writer);

        public void Restore(ReadOnlySpan<byte> snapshot) => _inner.Restore(snapshot);
    }
}

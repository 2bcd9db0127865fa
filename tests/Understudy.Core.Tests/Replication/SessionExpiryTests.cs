using Microsoft.Extensions.Time.Testing;
using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// Log time and session expiry: the primary stamps its clock into entries, never decreasing; sessions expire from log
/// time alone, the same on every replica; a retry from an expired session is refused, never applied twice.
/// </summary>
public class SessionExpiryTests
{
    private static readonly ClientRef C1 = new(1);
    private static readonly ClientRef C2 = new(2);
    private static readonly ClientRef C3 = new(3);

    private static readonly ServerOptions ShortSessions = new() { SessionIdleTimeout = TimeSpan.FromMinutes(1) };

    [Fact]
    public void The_primary_stamps_its_wall_clock_into_the_entries_it_creates()
    {
        var p = StartPrimary();
        var now = p.Time.GetUtcNow().ToUnixTimeMilliseconds();

        p.Write(C1, 42, 1, "a");
        p.Time.Advance(TimeSpan.FromSeconds(3));
        p.HeartbeatAck();
        p.Write(C1, 42, 2, "b");

        Assert.Equal([now, now + 3000], p.Env.Appended.Select(e => e.LogTimeMs));
    }

    [Fact]
    public void A_new_primary_whose_clock_is_behind_its_log_never_stamps_a_time_below_the_log()
    {
        // The log came from a primary whose clock ran an hour ahead of this server's.
        var time = new FakeTimeProvider();
        var ahead = time.GetUtcNow().ToUnixTimeMilliseconds() + 3_600_000;
        var log = new[]
        {
            new LogEntry(1, 1, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty, ahead - 10),
            new LogEntry(2, 1, EntryKind.Command, 9, 1, 1, MessageStoreCommands.Append("x"), ahead),
        };
        var h = new ServerHarness(P, recoveredEpoch: 1, log: log, time: time);
        h.Push(Config(2, 5, P, All));
        h.SyncDisk();
        h.AckFrom(B1, 3);
        h.AckFrom(B2, 3);
        Assert.True(h.Node.IsServing, "fixture: the new primary should serve once its epoch start committed");
        h.Write(C1, 42, 1, "a");

        var stamped = h.Env.Appended.Select(e => e.LogTimeMs).ToList();
        Assert.Equal(2, stamped.Count);
        Assert.All(stamped, t => Assert.True(t >= ahead, $"entry stamped {t}, below the log's highest time {ahead}"));
    }

    [Fact]
    public void A_retry_from_a_session_expired_by_log_time_is_refused_and_not_applied_twice()
    {
        var p = StartPrimary(options: ShortSessions);
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);
        p.AckFrom(B2, 2);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C1)).Status);

        // Client 42 goes quiet; another client's write, two minutes later by the primary's clock, carries the log time
        // past 42's idle timeout, and applying it expires 42's session on every replica.
        p.Time.Advance(TimeSpan.FromMinutes(2));
        p.HeartbeatAck();
        p.Write(C2, 77, 1, "b");
        p.SyncDisk();
        p.AckFrom(B1, 3);
        p.AckFrom(B2, 3);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(C2)).Status);
        Assert.False(p.Node.State.Sessions.Contains(42), "client 42's session should have expired when the later entry was applied");

        // 42 never saw its answer (say) and retries request 1: whether it was applied is no longer known.
        p.Write(C3, 42, 1, "a");

        var refused = Single(p.Env.RepliesTo(C3));
        Assert.Equal(ResponseStatus.SessionExpired, refused.Status);
        Assert.Equal("session expired: the outcome of request 1 is unknown", refused.PayloadText);
        Assert.Equal(2, p.Machine.Count);
        Assert.Equal(3, p.Node.LastIndex);
    }

    [Fact]
    public void A_write_logged_before_its_session_expired_is_refused_when_applied_and_its_waiter_told_so()
    {
        // The primary logs 42's write while the session is alive; an earlier entry in the log (another client's, later by
        // log time) expires it before this one is applied: applying must refuse it on every replica, and the client
        // waiting for it hears "session expired", not "ok".
        var p = StartPrimary(options: ShortSessions);
        p.Write(C1, 42, 1, "a");
        p.SyncDisk();
        p.AckFrom(B1, 2);
        p.AckFrom(B2, 2);
        p.Time.Advance(TimeSpan.FromMinutes(2));
        p.HeartbeatAck();

        p.Write(C2, 77, 1, "b");
        p.Write(C1, 42, 2, "c", firstIncomplete: 2);
        p.SyncDisk();
        p.AckFrom(B1, 4);
        p.AckFrom(B2, 4);

        Assert.Equal(ResponseStatus.SessionExpired, Assert.Single(p.Env.RepliesTo(C1), r => r.Seq == 2).Status);
        Assert.Equal(2, p.Machine.Count);
    }

    [Fact]
    public void Expiry_is_identical_on_a_primary_and_a_backup_whose_clocks_disagree()
    {
        var p = StartPrimary(options: ShortSessions);

        // The backup's own clock is a day ahead: if expiry read it, the backup would expire sessions the primary keeps.
        var backupTime = new FakeTimeProvider(p.Time.GetUtcNow().AddDays(1));
        var b = new ServerHarness(B1, ShortSessions, time: backupTime);
        b.Push(Config(1, 5, P, All), withLease: false);
        var random = new Random(5);
        var seqs = new Dictionary<ulong, long>();
        for (var i = 0; i < 60; i++)
        {
            var client = (ulong)random.Next(1, 12);
            var seq = seqs[client] = seqs.GetValueOrDefault(client) + 1;
            p.Time.Advance(TimeSpan.FromSeconds(random.Next(0, 20)));
            p.HeartbeatAck();
            p.Write(new ClientRef(i), client, seq, $"m{i}", firstIncomplete: seq);
            p.SyncDisk();
            p.AckFrom(B1, p.Node.LastIndex);
            p.AckFrom(B2, p.Node.LastIndex);
        }

        // The backup receives the same log and the commit index, and applies it.
        var entries = p.Node.Log.Range(1, p.Node.LastIndex).ToArray();
        b.Deliver(Frame(1, P, 0, 0, p.Node.CommitIndex, entries));
        b.SyncDisk();
        b.Deliver(Frame(1, P, p.Node.LastIndex, 1, p.Node.CommitIndex));

        Assert.Equal(p.Node.CommitIndex, b.Node.State.AppliedIndex);
        Assert.True(p.Node.State.Sessions.ExpiredCount > 0, "fixture: some sessions should have expired");
        Assert.Equal(p.Node.State.SnapshotBytes(), b.Node.State.SnapshotBytes());
    }

    [Fact]
    public void Expiry_is_decided_at_the_same_index_on_every_replica_and_survives_a_snapshot()
    {
        var random = new Random(11);
        var a = new ReplicatedState(new MessageStore(), 6, TimeSpan.FromSeconds(30));
        var b = new ReplicatedState(new MessageStore(), 6, TimeSpan.FromSeconds(30));
        ReplicatedState? c = null;
        var seqs = new Dictionary<ulong, long>();
        var t = 1_000_000L;
        for (var index = 1L; index <= 400; index++)
        {
            var client = (ulong)random.Next(1, 15);
            var seq = seqs[client] = seqs.GetValueOrDefault(client) + 1;
            t += random.Next(0, 8000);
            var entry = new LogEntry(index, 1, EntryKind.Command, client, seq, seq == 1 ? 1 : seq, MessageStoreCommands.Append($"m{index}"), t);
            var ra = a.Apply(entry, out var oa);
            var rb = b.Apply(entry, out var ob);
            Assert.Equal(oa, ob);
            Assert.Equal(ra.ToArray(), rb.ToArray());
            Assert.Equal(a.Sessions.Count, b.Sessions.Count);
            if (c is not null)
            {
                c.Apply(entry, out var oc);
                Assert.Equal(oa, oc);
            }

            if (oa == SessionWrite.Expired)
            {
                // The client library starts a new session (a new id) after such a refusal.
                seqs.Remove(client);
            }

            if (index == 200)
            {
                // A replica restored from a snapshot expires the same sessions afterwards: the table, its log times and
                // the remembered expired ids are all in it.
                c = new ReplicatedState(new MessageStore(), 6, TimeSpan.FromSeconds(30));
                c.Restore(a.SnapshotBytes());
            }
        }

        Assert.True(a.Sessions.ExpiredTotal > 0, "fixture: some sessions should have expired");
        Assert.Equal(a.SnapshotBytes(), b.SnapshotBytes());
        Assert.Equal(a.SnapshotBytes(), c!.SnapshotBytes());
    }

    [Fact]
    public void An_unknown_client_whose_request_shows_earlier_writes_is_expired_even_once_its_id_is_forgotten()
    {
        // One session and one remembered id at most: client 1's id is forgotten after client 2's session also expires.
        var state = new ReplicatedState(new MessageStore(), 1, TimeSpan.FromMinutes(1));
        Apply(state, 1, client: 1, seq: 1, firstIncomplete: 1, timeMs: 0);
        Apply(state, 2, client: 1, seq: 2, firstIncomplete: 2, timeMs: 0);
        Apply(state, 3, client: 2, seq: 1, firstIncomplete: 1, timeMs: 120_000);
        Apply(state, 4, client: 3, seq: 1, firstIncomplete: 1, timeMs: 240_000);
        Assert.Equal(1, state.Sessions.ExpiredCount);

        // Client 1 retries write 2 (it had its answer to 1): refused, not applied as new.
        var result = state.Apply(Entry(5, 1, 2, 2, 240_000, "again"), out var outcome);

        Assert.Equal(SessionWrite.Expired, outcome);
        Assert.Equal("session expired: the outcome of request 2 is unknown", System.Text.Encoding.UTF8.GetString(result.Span));
        Assert.Equal(4, ((MessageStore)state.Machine).Count);
    }

    [Fact]
    public void A_retry_of_a_first_write_from_an_expired_session_is_refused_by_the_remembered_id()
    {
        var state = new ReplicatedState(new MessageStore(), 10, TimeSpan.FromMinutes(1));
        Apply(state, 1, client: 1, seq: 1, firstIncomplete: 1, timeMs: 0);
        Apply(state, 2, client: 2, seq: 1, firstIncomplete: 1, timeMs: 120_000);

        // The retry looks like a brand-new client's first write (seq 1, FirstIncomplete 1): only the remembered id tells.
        Assert.Equal(DedupLookup.Expired, state.Sessions.Lookup(1, 1, out _));
        state.Apply(Entry(3, 1, 1, 1, 120_000, "retry"), out var outcome);
        Assert.Equal(SessionWrite.Expired, outcome);
        Assert.Equal(2, ((MessageStore)state.Machine).Count);

        // A genuinely new client is still welcome.
        state.Apply(Entry(4, 3, 1, 1, 120_000, "new"), out var fresh);
        Assert.Equal(SessionWrite.Apply, fresh);
    }

    private static void Apply(ReplicatedState state, long index, ulong client, long seq, long firstIncomplete, long timeMs)
    {
        state.Apply(Entry(index, client, seq, firstIncomplete, timeMs, $"{client}/{seq}"), out var outcome);
        Assert.Equal(SessionWrite.Apply, outcome);
    }

    private static LogEntry Entry(long index, ulong client, long seq, long firstIncomplete, long timeMs, string text) =>
        new(index, 1, EntryKind.Command, client, seq, firstIncomplete, MessageStoreCommands.Append(text), timeMs);
}

using Microsoft.Extensions.Time.Testing;
using Understudy.Core.Client;

namespace Understudy.Core.Tests.Client;

/// <summary>The client's retry rules: same request id across failovers, following the newest primary, honest outcomes.</summary>
public class ClientSessionTests
{
    private const ulong Id = 70;

    private readonly FakeTimeProvider _time = new();
    private readonly RecordingClientEnvironment _env = new();

    [Fact]
    public void Client_retries_same_request_id_after_failover()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
        var first = Assert.Single(_env.SentTo(P));

        c.OnServerConnectionLost(P);
        c.Handle(new PrimaryUpdate(2, 4, B1));

        var retry = Assert.Single(_env.SentTo(B1));
        Assert.Equal((Id, seq), (retry.ClientId, retry.Seq));
        Assert.Equal(first.Payload.ToArray(), retry.Payload.ToArray());
        Assert.Equal(RequestKind.Write, retry.Kind);

        c.Handle(B1, Ok(seq, 2));
        var result = Assert.Single(_env.Completed);
        Assert.Equal(OutcomeKind.Ok, result.Outcome);
        Assert.Equal(2, result.Attempts);
        Assert.Equal(B1, result.Server);
    }

    [Fact]
    public void Client_follows_a_NotPrimary_hint_with_a_newer_epoch_at_once()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.NotPrimary, 2, B1, Text("not me")));

        Assert.Equal(B1, c.Primary);
        Assert.Equal(2, c.Epoch);
        Assert.Equal(seq, Assert.Single(_env.SentTo(B1)).Seq);
    }

    [Fact]
    public void Client_does_not_follow_a_NotPrimary_hint_that_is_not_newer_but_asks_the_monitor()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(2, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
        var queries = _env.MonitorQueries;

        c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.NotPrimary, 1, B1, Text("stale server")));

        Assert.Equal(P, c.Primary);
        Assert.Empty(_env.SentTo(B1));
        Assert.Equal(queries + 1, _env.MonitorQueries);
    }

    [Fact]
    public void Client_retries_soon_when_the_named_primary_has_not_taken_its_promotion_yet()
    {
        // The push can reach the client before the promotion reaches the server: the server still answers
        // NotPrimary from the older epoch. The client keeps it, asks the monitor, and tries again within the
        // initial backoff, not after a growing one.
        var c = Session();
        c.Handle(new PrimaryUpdate(2, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        for (var i = 0; i < 5; i++)
        {
            c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.NotPrimary, 1, NodeAddress.None, Text("not yet")));
            _time.Advance(TimeSpan.FromMilliseconds(6));
            c.Tick();
        }

        Assert.Equal(6, _env.SentTo(P).Count(r => r.Seq == seq));
    }

    [Fact]
    public void Client_ignores_stale_pushes_from_an_older_epoch()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(2, 4, B1));
        c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        c.Handle(new PrimaryUpdate(1, 3, P));

        Assert.Equal((B1, 2L), (c.Primary, c.Epoch));
        Assert.Empty(_env.SentTo(P));
    }

    [Fact]
    public void Client_resends_everything_pending_at_once_on_a_pushed_primary_change()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seqs = new[]
        {
            c.Submit(RequestKind.Write, MessageStoreCommands.Append("a")),
            c.Submit(RequestKind.Write, MessageStoreCommands.Append("b")),
            c.Submit(RequestKind.Read, MessageStoreCommands.Count()),
        };

        c.Handle(new PrimaryUpdate(2, 4, B1)); // no time passes

        Assert.Equal(seqs, _env.SentTo(B1).Select(r => r.Seq));
    }

    [Fact]
    public void Client_ignores_a_refusal_from_a_server_it_no_longer_sends_to()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
        c.Handle(new PrimaryUpdate(2, 4, B1));

        c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.Unavailable, 1, P, Text("lease lapsed")));

        Assert.DoesNotContain(_env.Events, e => e.Kind == ClientEventKind.Retrying);
        c.Handle(B1, Ok(seq, 1));
        Assert.Equal(OutcomeKind.Ok, Assert.Single(_env.Completed).Outcome);
    }

    [Fact]
    public void Client_reports_Unknown_not_Failed_when_the_deadline_passes_after_a_send()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"), TimeSpan.FromSeconds(1));

        Run(c, TimeSpan.FromMilliseconds(990));
        Assert.Empty(_env.Completed);
        Run(c, TimeSpan.FromMilliseconds(20));

        Assert.Equal(OutcomeKind.Unknown, Assert.Single(_env.Completed).Outcome);
    }

    [Fact]
    public void Client_reports_Failed_when_the_deadline_passes_and_the_request_was_never_sent()
    {
        var c = Session();
        c.Start();
        c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"), TimeSpan.FromSeconds(1));

        Run(c, TimeSpan.FromMilliseconds(1010));

        Assert.Empty(_env.Sent);
        Assert.Equal(OutcomeKind.Failed, Assert.Single(_env.Completed).Outcome);
        Assert.True(_env.MonitorQueries >= 2, "it keeps asking the monitor while no primary is known");
    }

    [Fact]
    public void Client_queued_request_is_sent_as_soon_as_a_primary_is_known()
    {
        var c = Session();
        c.Start();
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        c.Handle(new PrimaryUpdate(1, 3, P));

        Assert.Equal(seq, Assert.Single(_env.SentTo(P)).Seq);
    }

    [Fact]
    public void Client_fail_fast_policy_fails_at_once_with_no_primary()
    {
        var c = Session(new ClientOptions { NoPrimary = NoPrimaryPolicy.FailFast });

        c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        Assert.Equal(OutcomeKind.Failed, Assert.Single(_env.Completed).Outcome);
        Assert.Empty(_env.Sent);
    }

    [Fact]
    public void Client_reports_a_rejected_request_as_Failed()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, new byte[] { 9, 9 });

        c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.Rejected, 1, P, Text("not a message-store append command")));

        var result = Assert.Single(_env.Completed);
        Assert.Equal(OutcomeKind.Failed, result.Outcome);
        Assert.Contains("append", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Client_ignores_answers_meant_for_another_client()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        c.Handle(P, new ClientResponse(Id + 1, seq, ResponseStatus.Ok, 1, P, MessageStoreCommands.EncodeSeq(1)));

        Assert.Empty(_env.Completed);
    }

    [Fact]
    public void Client_retries_the_same_request_after_an_attempt_times_out()
    {
        var c = Session(new ClientOptions { AttemptTimeout = TimeSpan.FromMilliseconds(100) });
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
        var queries = _env.MonitorQueries;

        Run(c, TimeSpan.FromMilliseconds(400));

        var sent = _env.SentTo(P);
        Assert.True(sent.Count >= 2, "an unanswered attempt is sent again");
        Assert.All(sent, r => Assert.Equal((Id, seq), (r.ClientId, r.Seq)));
        Assert.True(_env.MonitorQueries > queries, "and the monitor is asked whether the primary changed");
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.5)]
    [InlineData(0.999)]
    public void Client_jittered_backoff_stays_within_bounds(double jitter)
    {
        var options = new ClientOptions
        {
            InitialBackoff = TimeSpan.FromMilliseconds(10),
            MaxBackoff = TimeSpan.FromMilliseconds(80),
            AttemptTimeout = TimeSpan.FromSeconds(30),
            RequestTimeout = TimeSpan.FromSeconds(60),
        };
        var c = Session(options, new FixedRandom(jitter));
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));

        var ceilings = new[] { 10, 20, 40, 80, 80, 80 };
        foreach (var ceiling in ceilings)
        {
            var before = _env.Sent.Count;
            c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.Unavailable, 1, P, Text("busy")));

            var waited = 0;
            while (_env.Sent.Count == before)
            {
                _time.Advance(TimeSpan.FromMilliseconds(1));
                waited++;
                c.Tick();
                Assert.True(waited <= ceiling, $"no retry within the {ceiling} ms backoff");
            }

            // Full jitter: anywhere in (0, ceiling], here at the fraction the random source gave.
            Assert.InRange(waited, Math.Max(1, (int)Math.Floor(jitter * ceiling)), ceiling);
        }
    }

    [Fact]
    public void Client_backoff_with_a_real_random_source_spreads_retries_within_bounds()
    {
        for (var s = 0; s < 20; s++)
        {
            var env = new RecordingClientEnvironment();
            var time = new FakeTimeProvider();
            var options = new ClientOptions { InitialBackoff = TimeSpan.FromMilliseconds(10), MaxBackoff = TimeSpan.FromMilliseconds(40), AttemptTimeout = TimeSpan.FromSeconds(30) };
            var c = new ClientSession(Id, options, env, time, new Random(s));
            c.Handle(new PrimaryUpdate(1, 3, P));
            var seq = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
            foreach (var ceiling in new[] { 10, 20, 40, 40 })
            {
                var before = env.Sent.Count;
                c.Handle(P, new ClientResponse(Id, seq, ResponseStatus.Unavailable, 1, P, Text("busy")));
                var waited = 0;
                while (env.Sent.Count == before)
                {
                    time.Advance(TimeSpan.FromMilliseconds(1));
                    c.Tick();
                    Assert.InRange(++waited, 1, ceiling);
                }
            }
        }
    }

    [Fact]
    public void Client_FirstIncomplete_tracks_the_lowest_pending_write()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));

        var w1 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
        var w2 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("b"));
        var r3 = c.Submit(RequestKind.Read, MessageStoreCommands.Count());
        Assert.Equal([1L, 1L, 1L], _env.Sent.Select(s => s.Request.FirstIncomplete));

        c.Handle(P, Ok(w1, 1));
        var w4 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("c"));
        Assert.Equal(2, _env.Sent[^1].Request.FirstIncomplete);

        // A pending read does not hold the watermark back.
        c.Handle(P, Ok(w2, 2));
        c.Submit(RequestKind.Read, MessageStoreCommands.Count());
        Assert.Equal(w4, _env.Sent[^1].Request.FirstIncomplete);

        c.Handle(P, Ok(w4, 3));
        var w6 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("d"));
        Assert.Equal(w6, _env.Sent[^1].Request.FirstIncomplete);
        Assert.True(r3 < w6);
    }

    [Fact]
    public void Client_reports_a_session_expired_refusal_as_unknown_and_writes_on_under_a_new_session()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var w1 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("a"));
        c.Handle(P, Ok(w1, 1));
        var w2 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("b"));
        var w3 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("c"));
        Assert.Equal(w2, _env.Sent[^1].Request.FirstIncomplete);

        c.Handle(P, new ClientResponse(Id, w2, ResponseStatus.SessionExpired, 1, P, Text($"session expired: the outcome of request {w2} is unknown")));

        // Both sent writes may have been applied under the old session: unknown, never retried under a new id.
        Assert.Equal([(w2, OutcomeKind.Unknown), (w3, OutcomeKind.Unknown)], _env.Completed.Skip(1).Select(r => (r.Seq, r.Outcome)));
        Assert.Equal($"session expired: the outcome of request {w2} is unknown", _env.Completed[1].Error);
        Assert.NotEqual(Id, c.ClientId);
        Assert.Equal(0, c.PendingCount);

        // The next write starts the new session: a new id, and FirstIncomplete 1 so the servers take it as new.
        var sentBefore = _env.Sent.Count;
        var w4 = c.Submit(RequestKind.Write, MessageStoreCommands.Append("d"));
        var next = _env.Sent[^1].Request;
        Assert.Equal(sentBefore + 1, _env.Sent.Count);
        Assert.Equal((c.ClientId, w4, 1L), (next.ClientId, next.Seq, next.FirstIncomplete));
    }

    [Fact]
    public void A_stale_read_goes_first_to_the_chosen_backup_and_to_the_primary_at_once_when_that_backup_refuses()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var payload = StaleReadPayload.Encode(TimeSpan.FromMilliseconds(200), MessageStoreCommands.Count());
        var seq = c.Submit(RequestKind.StaleRead, payload, null, B1);
        Assert.Equal(seq, Assert.Single(_env.SentTo(B1)).Seq);
        Assert.Empty(_env.SentTo(P));

        c.Handle(B1, new ClientResponse(Id, seq, ResponseStatus.NotPrimary, 1, P, Text("too far behind")));

        var toPrimary = Assert.Single(_env.SentTo(P));
        Assert.Equal((seq, RequestKind.StaleRead), (toPrimary.Seq, toPrimary.Kind));
        c.Handle(P, Ok(seq, 5));
        Assert.Equal(OutcomeKind.Ok, Assert.Single(_env.Completed).Outcome);
    }

    [Fact]
    public void A_stale_read_whose_backup_is_unreachable_goes_to_the_primary_on_its_next_attempt()
    {
        var c = Session();
        c.Handle(new PrimaryUpdate(1, 3, P));
        var seq = c.Submit(RequestKind.StaleRead, StaleReadPayload.Encode(TimeSpan.FromSeconds(1), MessageStoreCommands.Count()), null, B2);

        c.OnServerConnectionLost(B2);
        Run(c, TimeSpan.FromSeconds(1));

        Assert.Single(_env.SentTo(B2));
        Assert.Contains(_env.SentTo(P), r => r.Seq == seq);
    }

    private ClientSession Session(ClientOptions? options = null, Random? random = null) =>
        new(Id, options ?? new ClientOptions(), _env, _time, random ?? new Random(1));

    private void Run(ClientSession c, TimeSpan duration)
    {
        for (var t = TimeSpan.Zero; t < duration; t += TimeSpan.FromMilliseconds(10))
        {
            _time.Advance(TimeSpan.FromMilliseconds(10));
            c.Tick();
        }
    }

    private static ClientResponse Ok(long seq, long assigned) =>
        new(Id, seq, ResponseStatus.Ok, 1, P, MessageStoreCommands.EncodeSeq(assigned));

    /// <summary>A random source that always draws the same fraction, to pin the jitter.</summary>
    private sealed class FixedRandom(double value) : Random
    {
        public override double NextDouble() => value;
    }
}

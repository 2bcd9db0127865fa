using Understudy.Checking.Linearizability;

namespace Understudy.Checking.Tests;

/// <summary>
/// The key-value linearizability checker on hand-made histories (times in milliseconds here, microseconds
/// in the history) and on random histories that are linearizable by construction.
/// </summary>
public class LinearizabilityCheckerTests(ITestOutputHelper output)
{
    private const string K = "k1";

    private static long Ms(double milliseconds) => (long)(milliseconds * 1000);

    private static KvOperation Put(int p, string value, double from, double? to, KvOutcome outcome = KvOutcome.Ok, string key = K) =>
        KvOperation.Put(p, key, value, Ms(from), to is { } t ? Ms(t) : null, outcome);

    private static KvOperation Get(int p, string? result, double from, double to, string key = K) =>
        KvOperation.Get(p, key, Ms(from), Ms(to), result);

    private static KvOperation Cas(int p, string? expected, string value, double from, double? to, bool? swapped, KvOutcome outcome = KvOutcome.Ok) =>
        KvOperation.CompareAndSet(p, K, expected, value, Ms(from), to is { } t ? Ms(t) : null, swapped, outcome);

    private static KvOperation Incr(int p, long delta, double from, double? to, long? counter, KvOutcome outcome = KvOutcome.Ok) =>
        KvOperation.Increment(p, K, delta, Ms(from), to is { } t ? Ms(t) : null, counter, outcome);

    private static LinearizabilityResult Check(params KvOperation[] history) => LinearizabilityChecker.Check(history, cancellationToken: TestContext.Current.CancellationToken);

    private void AssertLinearizable(LinearizabilityResult result)
    {
        Assert.True(result.Linearizable, result.Describe());
        Assert.Empty(result.Failures);
    }

    private FailingWindow AssertNotLinearizable(LinearizabilityResult result, string key = K)
    {
        output.WriteLine(result.Describe());
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, result.Verdict);
        var failure = Assert.Single(result.Failures);
        Assert.Equal(key, failure.Key);
        return failure.Window!;
    }

    [Fact]
    public void Sequential_puts_deletes_and_gets_that_read_the_last_write_are_linearizable()
    {
        AssertLinearizable(Check(
            Get(0, null, 0, 1),
            Put(0, "a", 2, 3),
            Get(1, "a", 4, 5),
            KvOperation.Delete(0, K, Ms(6), Ms(7)),
            Get(1, null, 8, 9),
            Put(1, "b", 10, 11),
            Get(0, "b", 12, 13)));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("b")]
    public void Overlapping_puts_may_take_effect_in_either_order(string seen)
    {
        AssertLinearizable(Check(
            Put(0, "a", 0, 10),
            Put(1, "b", 1, 9),
            Get(2, seen, 20, 21),
            Get(3, seen, 22, 23)));
    }

    [Fact]
    public void A_read_overlapping_a_write_may_see_the_old_or_the_new_value_but_later_reads_never_go_back()
    {
        AssertLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, 10),
            Get(2, "a", 3, 4),
            Get(3, "b", 5, 6),
            Get(2, "b", 7, 8)));

        AssertNotLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, 10),
            Get(3, "b", 3, 4),
            Get(2, "a", 5, 6)));
    }

    [Fact]
    public void A_compare_and_set_race_with_one_winner_is_linearizable()
    {
        AssertLinearizable(Check(
            Put(0, "0", 0, 1),
            Cas(1, "0", "1", 2, 10, swapped: true),
            Cas(2, "0", "2", 3, 9, swapped: false),
            Get(0, "1", 11, 12)));
    }

    [Fact]
    public void Concurrent_increments_with_distinct_results_are_linearizable_in_either_order()
    {
        AssertLinearizable(Check(
            Incr(0, 1, 0, 10, counter: 2),
            Incr(1, 1, 1, 9, counter: 1),
            Incr(2, 5, 11, 12, counter: 7),
            Get(0, "7", 13, 14)));
    }

    [Fact]
    public void Increment_treats_a_missing_key_as_zero_and_refuses_a_value_that_is_not_an_integer()
    {
        Assert.True(KvModel.Step(null, Incr(0, 3, 0, 1, counter: 3), out var next));
        Assert.Equal("3", next);
        Assert.True(KvModel.Step("-4", Incr(0, 3, 0, 1, counter: -1), out next));
        Assert.Equal("-1", next);
        Assert.False(KvModel.Step("x", Incr(0, 1, 0, 1, counter: 1), out _));
        Assert.False(KvModel.Step(long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture), Incr(0, 1, 0, 1, counter: 0), out _));
        Assert.True(KvModel.Step("x", Incr(0, 1, 0, null, null, KvOutcome.Unknown), out next));
        Assert.Equal("x", next);
    }

    [Fact]
    public void A_stale_read_after_a_completed_write_is_not_linearizable()
    {
        var window = AssertNotLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, 3),
            Get(2, "a", 4, 5)));

        Assert.Equal("get(k1) -> \"a\"", window.Unplaced.Describe());
        Assert.Contains("p2  get(k1) -> \"a\"  [4.000 ms .. 5.000 ms]  ok", window.ToString(), StringComparison.Ordinal);
        Assert.Contains("p1  put(k1, \"b\")  [2.000 ms .. 3.000 ms]  ok", window.ToString(), StringComparison.Ordinal);
        Assert.Contains("leaves k1 = \"b\"", window.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void A_lost_update_where_two_increments_both_start_from_the_same_base_is_not_linearizable()
    {
        var window = AssertNotLinearizable(Check(
            Incr(0, 1, 0, 10, counter: 1),
            Incr(1, 1, 1, 11, counter: 1)));

        Assert.Equal(2, window.Involved.Count);
    }

    [Fact]
    public void A_lost_update_where_two_compare_and_sets_from_the_same_base_both_succeed_is_not_linearizable()
    {
        AssertNotLinearizable(Check(
            Put(0, "0", 0, 1),
            Cas(1, "0", "1", 2, 10, swapped: true),
            Cas(2, "0", "2", 3, 9, swapped: true)));
    }

    [Fact]
    public void A_compare_and_set_of_unknown_outcome_retried_and_applied_twice_is_not_linearizable()
    {
        // The first attempt timed out but was applied (another client reads its value); the retry then
        // claims to have swapped from a value that is no longer there.
        var window = AssertNotLinearizable(Check(
            Put(0, "a", 0, 1),
            Cas(1, "a", "b", 2, null, swapped: null, KvOutcome.Unknown),
            Get(2, "b", 3, 4),
            Cas(1, "a", "b", 5, 6, swapped: true)));

        Assert.Equal(KvFunction.CompareAndSet, window.Unplaced.Function);
        Assert.Equal(Ms(6), window.EndsAt);
    }

    [Fact]
    public void An_unknown_write_can_explain_a_read_of_its_value_that_would_otherwise_be_impossible()
    {
        AssertLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, null, KvOutcome.Unknown),
            Get(2, "a", 10, 11),
            Get(2, "b", 12, 13)));

        // The same write surely not applied cannot.
        AssertNotLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, 3, KvOutcome.Failed),
            Get(2, "b", 12, 13)));
    }

    [Fact]
    public void An_unknown_write_may_never_take_effect()
    {
        AssertLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, null, KvOutcome.Unknown),
            Get(2, "a", 100, 101),
            Incr(3, 1, 102, 103, counter: null, KvOutcome.Unknown),
            Get(2, "a", 200, 201)));
    }

    [Fact]
    public void An_unknown_write_cannot_take_effect_before_it_was_invoked()
    {
        AssertNotLinearizable(Check(
            Put(0, "a", 0, 1),
            Get(2, "b", 2, 3),
            Put(1, "b", 5, null, KvOutcome.Unknown)));
    }

    [Fact]
    public void An_unknown_write_takes_effect_at_most_once()
    {
        AssertNotLinearizable(Check(
            Put(0, "a", 0, 1),
            Put(1, "b", 2, null, KvOutcome.Unknown),
            Get(2, "b", 3, 4),
            Put(0, "c", 5, 6),
            Get(2, "b", 7, 8)));
    }

    [Fact]
    public void Keys_are_judged_apart_so_only_the_bad_key_is_reported()
    {
        var result = Check(
            Put(0, "a", 0, 1, key: "good1"),
            Put(1, "a", 0, 1, key: "bad"),
            Put(1, "b", 2, 3, key: "bad"),
            Get(2, "a", 2, 3, key: "good1"),
            Get(2, "a", 4, 5, key: "bad"),
            Put(3, "z", 0, 9, key: "good2"),
            Get(3, "z", 10, 11, key: "good2"));

        AssertNotLinearizable(result, "bad");
        Assert.Equal(["bad", "good1", "good2"], result.Keys.Select(k => k.Key));
        Assert.All(result.Keys.Where(k => k.Key != "bad"), k => Assert.Equal(LinearizabilityVerdict.Linearizable, k.Verdict));
        Assert.Equal(7, result.OperationsChecked);
    }

    [Fact]
    public void The_failing_window_is_the_shortest_failing_prefix_and_one_acknowledgement_less_is_linearizable()
    {
        var history = new List<KvOperation>
        {
            Put(0, "a", 0, 1),
            Get(1, "a", 2, 3),
            Put(0, "b", 4, 6),
            Get(1, "b", 5, 7),
            Get(2, "a", 8, 9),   // stale: "b" was read before this began
            Put(0, "c", 8.5, 12), // open when the stale read returns
            Get(1, "c", 13, 14),
            Put(2, "d", 15, 16),
            Get(0, "d", 17, 18),
        };
        var window = AssertNotLinearizable(LinearizabilityChecker.Check(history, cancellationToken: TestContext.Current.CancellationToken));

        Assert.True(window.Minimal);
        Assert.Equal(Ms(9), window.EndsAt);
        Assert.Equal(6, window.Operations.Count);
        Assert.Equal("get(k1) -> \"a\"", window.Unplaced.Describe());
        // The write the stale read missed, the read, and the write still open beside it; not the older history.
        Assert.Equal(["put(k1, \"b\")", "get(k1) -> \"a\"", "put(k1, \"c\")"], window.Involved.Select(o => o.Describe()));
        Assert.Contains("(still open at the window's end)", window.ToString(), StringComparison.Ordinal);

        // Minimal: cut just before the stale read's acknowledgement (it and the open put become unknown), it passes.
        var before = history.Where(o => o.InvokedAt < window.EndsAt)
            .Select(o => o.CompletedAt >= window.EndsAt
                ? o with { Outcome = KvOutcome.Unknown, CompletedAt = null, Result = null }
                : o);
        AssertLinearizable(LinearizabilityChecker.Check(before, cancellationToken: TestContext.Current.CancellationToken));
    }

    [Fact]
    public void A_random_linearizable_history_of_10000_operations_is_judged_linearizable()
    {
        var history = SyntheticKvHistory.Linearizable(10_000, clients: 64, keys: 100, unknownFraction: 0.03, seed: 11);

        var result = LinearizabilityChecker.Check(history, cancellationToken: TestContext.Current.CancellationToken);

        AssertLinearizable(result);
        Assert.Equal(history.Count(o => o.Outcome != KvOutcome.Failed), result.OperationsChecked);
        output.WriteLine(result.Describe());
    }

    [Fact]
    public void A_random_history_with_one_read_of_a_value_never_written_fails_on_that_key_only()
    {
        var history = SyntheticKvHistory.Linearizable(10_000, clients: 64, keys: 100, unknownFraction: 0.03, seed: 12);
        var victim = Array.FindIndex(history, o => o.Function == KvFunction.Get && o.Outcome == KvOutcome.Ok);
        history[victim] = history[victim] with { Result = "never-written" };

        var result = LinearizabilityChecker.Check(history, cancellationToken: TestContext.Current.CancellationToken);

        var window = AssertNotLinearizable(result, history[victim].Key);
        Assert.Equal(history[victim], window.Unplaced);
        Assert.Equal(history[victim].CompletedAt, window.EndsAt);
    }

    [Fact]
    public void A_budget_too_small_for_the_search_gives_an_unknown_verdict_instead_of_running_on()
    {
        // One key, many overlapping calls: far more search steps than fit in no time at all.
        var history = SyntheticKvHistory.Linearizable(5_000, clients: 64, keys: 1, unknownFraction: 0.05, seed: 13);

        var result = LinearizabilityChecker.Check(history, new LinearizabilityOptions { Budget = TimeSpan.Zero }, TestContext.Current.CancellationToken);

        Assert.Equal(LinearizabilityVerdict.Unknown, result.Verdict);
        Assert.False(result.Linearizable);
        Assert.Equal(LinearizabilityVerdict.Unknown, Assert.Single(result.Keys).Verdict);
    }

    [Fact]
    public void Measure_100000_operations_from_64_clients_over_1000_keys_with_unknown_outcomes()
    {
        // Prints the time; asserts only the verdict (no timing assertions in tests).
        var history = SyntheticKvHistory.Linearizable(100_000, clients: 64, keys: 1_000, unknownFraction: 0.02, seed: 100);

        var result = LinearizabilityChecker.Check(history, cancellationToken: TestContext.Current.CancellationToken);

        output.WriteLine($"100000 operations, 64 clients, 1000 keys, {history.Count(o => o.Outcome == KvOutcome.Unknown)} unknown: {result.Describe()}");
        AssertLinearizable(result);
    }

    [Fact]
    public void A_stale_read_hidden_in_100000_operations_from_64_clients_over_1000_keys_is_found_in_a_small_window()
    {
        // The bench's shape with one stale read planted: a get, invoked after a later write of its key had completed,
        // that returns the value from before that write (what a backup or a lease-less old primary would answer).
        var history = SyntheticKvHistory.Linearizable(100_000, clients: 64, keys: 1_000, unknownFraction: 0.02, seed: 101);
        var (victim, stale) = PlantStaleRead(history);

        var result = LinearizabilityChecker.Check(history, cancellationToken: TestContext.Current.CancellationToken);

        var window = AssertNotLinearizable(result, history[victim].Key);
        output.WriteLine($"planted get({history[victim].Key}) -> {stale} at index {victim}; failing window of {window.Operations.Count} operations, {window.Involved.Count} involved");
        Assert.True(window.Minimal, "the failing window was not shortened to the smallest failing prefix");
        Assert.Equal(history[victim], window.Unplaced);
        Assert.Equal(history[victim].CompletedAt, window.EndsAt);

        // The key's whole history has about 100 operations; the window stops at the stale read.
        var keyOperations = history.Count(o => o.Key == history[victim].Key);
        Assert.True(window.Operations.Count < keyOperations, $"expected a window shorter than the key's {keyOperations} operations, got {window.Operations.Count}");
        Assert.True(window.Involved.Count <= 10, $"expected a handful of involved operations, got {window.Involved.Count}:\n{window}");
    }

    /// <summary>
    /// Finds an acknowledged get whose key's last write before it is an acknowledged put, completed before the get was
    /// invoked and after every earlier write of the key had completed (all of them acknowledged, none unknown, so none
    /// can land later), with no write of the key overlapping the get, and makes it return what the key held before that put.
    /// </summary>
    private static (int Index, string? Stale) PlantStaleRead(KvOperation[] history)
    {
        for (var i = history.Length / 2; i < history.Length; i++)
        {
            var get = history[i];
            if (get.Function != KvFunction.Get || get.Outcome != KvOutcome.Ok)
            {
                continue;
            }

            var writes = history.Take(i).Where(o => o.Key == get.Key && o.Function != KvFunction.Get && o.Outcome != KvOutcome.Failed).ToList();
            if (writes.Count < 2 || writes.Any(w => w.Outcome != KvOutcome.Ok) || writes[^1] is not { Function: KvFunction.Put } last
                || last.CompletedAt >= get.InvokedAt || writes[..^1].Any(w => w.CompletedAt >= last.InvokedAt)
                || history.Skip(i + 1).Any(o => o.Key == get.Key && o.Function != KvFunction.Get && o.InvokedAt <= get.CompletedAt))
            {
                continue;
            }

            // What the key held before the put: replay the earlier writes in completion order (they did not overlap the put).
            string? before = null;
            foreach (var w in writes[..^1].OrderBy(w => w.CompletedAt))
            {
                KvModel.Step(before, w, out before);
            }

            if (before == last.Value)
            {
                continue;
            }

            history[i] = get with { Result = before };
            return (i, before);
        }

        throw new InvalidOperationException("no get in the history fits a planted stale read: change the seed");
    }

    [Fact]
    public void A_key_value_history_read_back_from_json_lines_is_the_same_and_judged_the_same()
    {
        var history = new KvHistory(SyntheticKvHistory.Linearizable(500, clients: 8, keys: 5, unknownFraction: 0.1, seed: 21));
        history.Add(Get(9, "never-written", 1_000_000, 1_000_001, key: "k0"));

        var text = history.ToJsonLines();
        using var reader = new StringReader(text);
        var back = KvHistory.ReadJsonLines(reader);

        Assert.Equal(history.Operations, back.Operations);
        Assert.Contains("\"Function\":\"CompareAndSet\"", text, StringComparison.Ordinal);
        var verdict = back.Check(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal("k0", Assert.Single(verdict.Failures).Key);
    }

    [Fact]
    public void An_acknowledged_call_without_its_completion_or_result_is_refused_as_malformed()
    {
        Assert.Throws<ArgumentException>(() => Check(Put(0, "a", 0, null, KvOutcome.Ok)));
        Assert.Throws<ArgumentException>(() => Check(Incr(0, 1, 0, 1, counter: null)));
        Assert.Throws<ArgumentException>(() => Check(Get(0, "a", 2, 1)));
    }
}

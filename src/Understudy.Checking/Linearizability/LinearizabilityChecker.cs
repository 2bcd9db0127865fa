using System.Diagnostics;

namespace Understudy.Checking.Linearizability;

/// <summary>
/// Judges a key-value history for linearizability against <see cref="KvModel"/>. The history is partitioned
/// by key, as Porcupine does: every operation touches one key and the model's state is per key, so the whole
/// history is linearizable exactly when each key's sub-history is, and each is searched on its own (in
/// parallel) by <see cref="KeySearch"/>. Failed operations are dropped; unknown-outcome ones may take effect
/// anywhere after their invoke, or never. For a key that fails, a binary search over the completion times of
/// its acknowledged operations finds the shortest failing prefix, which the report shows.
/// </summary>
public static class LinearizabilityChecker
{
    public static LinearizabilityResult Check(IEnumerable<KvOperation> history, LinearizabilityOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LinearizabilityOptions();
        var started = Stopwatch.GetTimestamp();
        var deadline = options.Budget is { } budget
            ? started + (long)(budget.TotalSeconds * Stopwatch.Frequency)
            : long.MaxValue;

        var byKey = new Dictionary<string, List<KvOperation>>(StringComparer.Ordinal);
        var checkedCount = 0;
        foreach (var op in history)
        {
            Validate(op);
            if (op.Outcome == KvOutcome.Failed || (op.Outcome == KvOutcome.Unknown && op.Function == KvFunction.Get))
            {
                // Surely not applied, or a read whose answer never came: neither constrains anything.
                if (op.Outcome != KvOutcome.Failed)
                {
                    checkedCount++;
                }

                continue;
            }

            checkedCount++;
            if (!byKey.TryGetValue(op.Key, out var list))
            {
                byKey[op.Key] = list = [];
            }

            list.Add(op);
        }

        var keys = byKey.Keys.Order(StringComparer.Ordinal).ToArray();
        var results = new KeyResult[keys.Length];

        // Largest keys first, so one long key does not start last on a busy thread.
        var order = Enumerable.Range(0, keys.Length).OrderByDescending(i => byKey[keys[i]].Count).ToArray();
        Parallel.ForEach(
            order,
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxDegreeOfParallelism) },
            i => results[i] = CheckKey(keys[i], byKey[keys[i]], options, deadline, cancellationToken));

        var verdict = results.Any(r => r.Verdict == LinearizabilityVerdict.NotLinearizable) ? LinearizabilityVerdict.NotLinearizable
            : results.Any(r => r.Verdict == LinearizabilityVerdict.Unknown) ? LinearizabilityVerdict.Unknown
            : LinearizabilityVerdict.Linearizable;
        return new LinearizabilityResult
        {
            Verdict = verdict,
            Keys = results,
            OperationsChecked = checkedCount,
            Elapsed = Stopwatch.GetElapsedTime(started),
        };
    }

    private static void Validate(KvOperation op)
    {
        if (op.Outcome == KvOutcome.Ok && op.CompletedAt is null)
        {
            throw new ArgumentException($"an acknowledged operation needs a completion time: {op.ToReportLine()}", nameof(op));
        }

        if (op.Outcome == KvOutcome.Ok && op.CompletedAt < op.InvokedAt)
        {
            throw new ArgumentException($"an operation completes before it was invoked: {op.ToReportLine()}", nameof(op));
        }

        var missing = op.Outcome == KvOutcome.Ok && op.Function switch
        {
            KvFunction.CompareAndSet => op.Swapped is null,
            KvFunction.Increment => op.Counter is null,
            _ => false,
        };
        if (missing || (op.Function is KvFunction.Put or KvFunction.CompareAndSet && op.Value is null))
        {
            throw new ArgumentException($"an operation lacks its value or result: {op.ToReportLine()}", nameof(op));
        }
    }

    private static KeyResult CheckKey(string key, List<KvOperation> operations, LinearizabilityOptions options, long deadline, CancellationToken cancellationToken)
    {
        operations.Sort(static (a, b) => a.InvokedAt.CompareTo(b.InvokedAt));
        var full = KeySearch.Run(operations, deadline, cancellationToken);
        switch (full.Status)
        {
            case SearchStatus.Linearizable:
                return new KeyResult(key, LinearizabilityVerdict.Linearizable, operations.Count, null);
            case SearchStatus.OutOfBudget:
                return new KeyResult(key, LinearizabilityVerdict.Unknown, operations.Count, null);
        }

        var endsAt = operations.Where(o => o.Outcome == KvOutcome.Ok).Max(o => o.CompletedAt!.Value);
        var minimal = false;
        var failing = full;
        var window = operations;
        var prefix = (IReadOnlyList<KvOperation>)operations;
        if (options.FindSmallestWindow)
        {
            // Prefixes of a linearizable history are linearizable, so "the prefix up to t fails" is monotone in t,
            // and only an acknowledgement (a return) can make a prefix fail: binary search over those times.
            var cuts = operations.Where(o => o.Outcome == KvOutcome.Ok).Select(o => o.CompletedAt!.Value).Distinct().Order().ToArray();
            var lo = 0;
            var hi = cuts.Length - 1;
            var outOfBudget = false;
            while (lo < hi)
            {
                var mid = lo + ((hi - lo) / 2);
                var probe = KeySearch.Run(Prefix(operations, cuts[mid]), deadline, cancellationToken);
                if (probe.Status == SearchStatus.OutOfBudget)
                {
                    outOfBudget = true;
                    break;
                }

                if (probe.Status == SearchStatus.NotLinearizable)
                {
                    hi = mid;
                }
                else
                {
                    lo = mid + 1;
                }
            }

            if (!outOfBudget)
            {
                var shortest = Prefix(operations, cuts[lo]);
                var result = KeySearch.Run(shortest, deadline, cancellationToken);
                if (result.Status == SearchStatus.NotLinearizable)
                {
                    endsAt = cuts[lo];
                    window = [.. operations.Where(o => o.InvokedAt <= endsAt)];
                    prefix = shortest;
                    failing = result;
                    minimal = true;
                }
            }
        }

        return new KeyResult(key, LinearizabilityVerdict.NotLinearizable, operations.Count, Explain(key, window, prefix, failing, endsAt, minimal));
    }

    /// <summary>
    /// The history as it stood at <paramref name="t"/>: operations invoked by then, those still open counted as
    /// unknown outcome (they may or may not have taken effect yet; a read still open then constrains nothing). The list
    /// stays index-aligned with the operations invoked by then, so the report can map the search's indices back.
    /// </summary>
    private static List<KvOperation> Prefix(List<KvOperation> operations, long t)
    {
        var prefix = new List<KvOperation>();
        foreach (var op in operations)
        {
            if (op.InvokedAt > t)
            {
                continue;
            }

            prefix.Add(op.Outcome == KvOutcome.Ok && op.CompletedAt > t
                ? op with { Outcome = KvOutcome.Unknown, CompletedAt = null, Result = null, Swapped = null, Counter = null }
                : op);
        }

        return prefix;
    }

    private static FailingWindow Explain(string key, List<KvOperation> window, IReadOnlyList<KvOperation> judged, SearchResult failing, long endsAt, bool minimal)
    {
        var unplaced = failing.Unplaced;
        var placed = new HashSet<int>(failing.Deepest);
        var involved = new SortedSet<int> { unplaced };
        var unplacedInvoked = judged[unplaced].InvokedAt;
        for (var i = 0; i < judged.Count; i++)
        {
            // Acknowledged operations the search could not place either.
            if (!placed.Contains(i) && judged[i].Outcome == KvOutcome.Ok)
            {
                involved.Add(i);
            }
        }

        var lastWrite = -1;
        foreach (var i in failing.Deepest)
        {
            var op = judged[i];
            var end = op.Outcome == KvOutcome.Ok ? op.CompletedAt!.Value : long.MaxValue;
            if (end >= unplacedInvoked)
            {
                // Concurrent with the unplaced operation: it could have been ordered on either side of it.
                involved.Add(i);
            }
            else if (op.Function != KvFunction.Get)
            {
                lastWrite = i;
            }
        }

        if (lastWrite >= 0)
        {
            involved.Add(lastWrite);
        }

        var state = KvOperation.Quote(failing.DeepestState);
        var original = window[unplaced];
        var explanation =
            $"the longest linearizable order found places {failing.Deepest.Count} of the {judged.Count} operations and leaves {key} = {state}; " +
            $"{original.Describe()} (p{original.Process}, done at {KvOperation.Milliseconds(original.CompletedAt ?? endsAt)}) cannot be placed after it, " +
            "and no other order of the operations before it completed makes room for it";
        return new FailingWindow
        {
            Key = key,
            EndsAt = endsAt,
            Minimal = minimal,
            Operations = window,
            Involved = [.. involved.Select(i => window[i]).OrderBy(o => o.InvokedAt)],
            LongestLinearization = [.. failing.Deepest.Select(i => window[i])],
            Unplaced = original,
            Explanation = explanation,
        };
    }
}

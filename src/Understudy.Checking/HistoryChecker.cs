using System.Text.Json.Serialization;

namespace Understudy.Checking;

/// <summary>What rule a history broke.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ViolationKind>))]
public enum ViolationKind
{
    /// <summary>An acknowledged append is missing from the final log.</summary>
    LostWrite,

    /// <summary>A message appears more than once in the final log.</summary>
    DuplicateWrite,

    /// <summary>The final log holds a message no client sent.</summary>
    PhantomWrite,

    /// <summary>An append was acknowledged with a sequence number other than its place in the final log.</summary>
    WrongSequence,

    /// <summary>A failed (surely not applied) append is in the final log.</summary>
    FailedWriteApplied,

    /// <summary>An append acknowledged before another was sent sits after it in the final log.</summary>
    RealTimeOrder,

    /// <summary>A read returned something that is not a slice of the one final order.</summary>
    ReadNotPrefix,

    /// <summary>A read missed a write acknowledged before the read began, or went backwards.</summary>
    StaleRead,

    /// <summary>Two servers acknowledged writes in the same epoch.</summary>
    SplitBrain,

    /// <summary>The history itself is not well formed (completion without invoke, repeated values).</summary>
    MalformedHistory,

    /// <summary>A simulator-level invariant broke (committed prefixes differ, a server refused an unsafe action).</summary>
    Invariant,

    /// <summary>The cluster did not recover after every fault was healed.</summary>
    NoRecovery,

    /// <summary>A key-value history has no linearization (or the checker could not decide within its budget).</summary>
    NotLinearizable,
}

/// <summary>One broken rule, with enough detail to find it in the history.</summary>
public sealed record Violation(ViolationKind Kind, string Detail)
{
    public override string ToString() => $"{Kind}: {Detail}";
}

/// <summary>Counts from a check.</summary>
public sealed record CheckStats
{
    public int Operations { get; init; }

    public int Acknowledged { get; init; }

    public int Failed { get; init; }

    public int Indeterminate { get; init; }

    public int Reads { get; init; }

    public int FinalLength { get; init; }

    public int Lost { get; init; }

    public int Duplicated { get; init; }

    public int Phantom { get; init; }

    public int OrderViolations { get; init; }

    public int ReadViolations { get; init; }

    public int EpochViolations { get; init; }
}

/// <summary>The verdict: valid when no rule broke.</summary>
public sealed record CheckResult(IReadOnlyList<Violation> Violations, CheckStats Stats)
{
    public bool Valid => Violations.Count == 0;
}

/// <summary>
/// Judges a message-store history against the final log (read back after every fault was healed):
/// every acknowledged append is there exactly once and at the sequence number it was given; nothing
/// appears that nobody sent or that surely failed; an append acknowledged before another was sent comes
/// first; every read is a slice of the final order and sees every write acknowledged before it began;
/// at most one server acknowledged writes in any epoch.
/// </summary>
public static class HistoryChecker
{
    /// <summary>Most violations of one kind listed in full (the counts are always complete).</summary>
    public const int MaxListedPerKind = 20;

    public static CheckResult Check(History history, IReadOnlyList<string> finalLog) => Check(history.Operations, finalLog);

    public static CheckResult Check(IReadOnlyList<Operation> operations, IReadOnlyList<string> finalLog)
    {
        var violations = new List<Violation>();
        var perKind = new Dictionary<ViolationKind, int>();
        void Flag(ViolationKind kind, string detail)
        {
            perKind[kind] = perKind.GetValueOrDefault(kind) + 1;
            if (perKind[kind] <= MaxListedPerKind)
            {
                violations.Add(new Violation(kind, detail));
            }
        }

        var calls = Pair(operations, Flag);

        // Where each message landed.
        var positions = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        for (var i = 0; i < finalLog.Count; i++)
        {
            if (!positions.TryGetValue(finalLog[i], out var list))
            {
                positions[finalLog[i]] = list = [];
            }

            list.Add(i + 1);
        }

        var sent = new HashSet<string>(StringComparer.Ordinal);
        foreach (var call in calls.Where(c => c.Function == OpFunction.Append && c.Value is not null))
        {
            if (!sent.Add(call.Value!))
            {
                Flag(ViolationKind.MalformedHistory, $"value '{call.Value}' is appended by more than one call; values must be unique");
            }
        }

        var duplicated = 0;
        var phantom = 0;
        foreach (var (value, at) in positions)
        {
            if (at.Count > 1)
            {
                duplicated++;
                Flag(ViolationKind.DuplicateWrite, $"'{value}' appears {at.Count} times, at {string.Join(", ", at)}");
            }

            if (!sent.Contains(value))
            {
                phantom++;
                Flag(ViolationKind.PhantomWrite, $"'{value}' at {at[0]} was never sent by any client");
            }
        }

        var lost = 0;
        foreach (var call in calls.Where(c => c.Function == OpFunction.Append))
        {
            var landed = call.Value is not null && positions.TryGetValue(call.Value, out var at) ? at[0] : 0;
            if (call.Outcome == OpType.Ok)
            {
                if (landed == 0)
                {
                    lost++;
                    Flag(ViolationKind.LostWrite, $"'{call.Value}' acknowledged as {call.Seq} by {call.Server} in epoch {call.Epoch} (process {call.Process}, t={call.Completed}us) is not in the final log of {finalLog.Count}");
                }
                else if (call.Seq is { } seq && seq != landed)
                {
                    Flag(ViolationKind.WrongSequence, $"'{call.Value}' acknowledged as {seq} but is at {landed} in the final log");
                }
            }
            else if (call.Outcome == OpType.Fail && landed != 0)
            {
                Flag(ViolationKind.FailedWriteApplied, $"'{call.Value}' failed ({call.Error}) but is at {landed} in the final log");
            }
        }

        var orderViolations = CheckRealTimeOrder(calls, positions, Flag);
        var readViolations = CheckReads(calls, positions, finalLog, Flag);
        var epochViolations = CheckEpochs(calls, Flag);

        var stats = new CheckStats
        {
            Operations = calls.Count,
            Acknowledged = calls.Count(c => c.Function == OpFunction.Append && c.Outcome == OpType.Ok),
            Failed = calls.Count(c => c.Outcome == OpType.Fail),
            Indeterminate = calls.Count(c => c.Outcome is OpType.Info or OpType.Invoke),
            Reads = calls.Count(c => c.Function != OpFunction.Append && c.Outcome == OpType.Ok),
            FinalLength = finalLog.Count,
            Lost = lost,
            Duplicated = duplicated,
            Phantom = phantom,
            OrderViolations = orderViolations,
            ReadViolations = readViolations,
            EpochViolations = epochViolations,
        };
        return new CheckResult(violations, stats);
    }

    /// <summary>Joins each completion to its process's open invoke.</summary>
    private static List<Call> Pair(IReadOnlyList<Operation> operations, Action<ViolationKind, string> flag)
    {
        var calls = new List<Call>();
        var open = new Dictionary<int, Call>();
        foreach (var op in operations)
        {
            if (op.Type == OpType.Invoke)
            {
                if (open.ContainsKey(op.Process))
                {
                    flag(ViolationKind.MalformedHistory, $"process {op.Process} invoked at t={op.Time}us while its previous call was still open");
                }

                var call = new Call(op.Process, op.Function, op.Value, op.Time) { ReadFrom = op.ReadFrom, ReadLimit = op.ReadLimit };
                open[op.Process] = call;
                calls.Add(call);
                continue;
            }

            if (!open.Remove(op.Process, out var invoked))
            {
                flag(ViolationKind.MalformedHistory, $"process {op.Process} completed at t={op.Time}us with no open call");
                continue;
            }

            if (invoked.Function != op.Function)
            {
                flag(ViolationKind.MalformedHistory, $"process {op.Process} invoked {invoked.Function} but completed {op.Function}");
            }

            invoked.Outcome = op.Type;
            invoked.Completed = op.Time;
            invoked.Seq = op.Seq;
            invoked.ReadValues = op.ReadValues;
            invoked.ReadFrom = op.ReadFrom ?? invoked.ReadFrom;
            invoked.CountValue = op.Count;
            invoked.Epoch = op.Epoch;
            invoked.Server = op.Server;
            invoked.Error = op.Error;
        }

        return calls;
    }

    /// <summary>If A was acknowledged before B was invoked, A must precede B in the final log.</summary>
    private static int CheckRealTimeOrder(List<Call> calls, Dictionary<string, List<long>> positions, Action<ViolationKind, string> flag)
    {
        long Position(Call c) => c.Value is not null && positions.TryGetValue(c.Value, out var at) ? at[0] : 0;

        var acked = calls.Where(c => c.Function == OpFunction.Append && c.Outcome == OpType.Ok && Position(c) > 0)
            .OrderBy(c => c.Completed).ToList();
        var landed = calls.Where(c => c.Function == OpFunction.Append && Position(c) > 0)
            .OrderBy(c => c.Invoked).ToList();
        var violations = 0;
        var next = 0;
        Call? latest = null;
        foreach (var b in landed)
        {
            while (next < acked.Count && acked[next].Completed < b.Invoked)
            {
                if (latest is null || Position(acked[next]) > Position(latest))
                {
                    latest = acked[next];
                }

                next++;
            }

            if (latest is not null && Position(latest) > Position(b))
            {
                violations++;
                flag(ViolationKind.RealTimeOrder, $"'{latest.Value}' was acknowledged (t={latest.Completed}us) before '{b.Value}' was sent (t={b.Invoked}us) but sits after it ({Position(latest)} > {Position(b)})");
            }
        }

        return violations;
    }

    /// <summary>Reads are slices of the final order, and see everything acknowledged before they began.</summary>
    private static int CheckReads(List<Call> calls, Dictionary<string, List<long>> positions, IReadOnlyList<string> finalLog, Action<ViolationKind, string> flag)
    {
        var violations = 0;
        var acked = calls.Where(c => c.Function == OpFunction.Append && c.Outcome == OpType.Ok && c.Value is not null && positions.ContainsKey(c.Value))
            .Select(c => (c.Completed, Position: positions[c.Value!][0]))
            .OrderBy(x => x.Completed).ToList();

        // The longest prefix any completed read observed, by completion time (reads must not go backwards).
        var reads = calls.Where(c => c.Function is OpFunction.Read or OpFunction.Count && c.Outcome == OpType.Ok).ToList();
        var observed = reads.Select(r => (r.Completed, Length: ObservedLength(r))).Where(x => x.Length >= 0).OrderBy(x => x.Completed).ToList();

        foreach (var r in reads)
        {
            long length;
            var complete = true;
            if (r.Function == OpFunction.Count)
            {
                length = r.CountValue ?? -1;
                if (length < 0)
                {
                    continue;
                }

                if (length > finalLog.Count)
                {
                    violations++;
                    flag(ViolationKind.ReadNotPrefix, $"count {length} (process {r.Process}, t={r.Invoked}us) exceeds the final log of {finalLog.Count}");
                    continue;
                }
            }
            else
            {
                var from = Math.Max(1, r.ReadFrom ?? 1);
                var values = r.ReadValues ?? [];
                var mismatch = false;
                for (var i = 0; i < values.Count; i++)
                {
                    var at = from + i;
                    if (at > finalLog.Count || !string.Equals(finalLog[(int)(at - 1)], values[i], StringComparison.Ordinal))
                    {
                        violations++;
                        mismatch = true;
                        flag(ViolationKind.ReadNotPrefix, $"read from {from} (process {r.Process}, t={r.Invoked}us) has '{values[i]}' at {at} where the final log has {(at > finalLog.Count ? "nothing" : "'" + finalLog[(int)(at - 1)] + "'")}");
                        break;
                    }
                }

                if (mismatch)
                {
                    continue;
                }

                length = from - 1 + values.Count;
                complete = r.ReadLimit is not { } limit || values.Count < limit;
                if (from > 1 && values.Count == 0)
                {
                    complete = true;
                }
            }

            if (!complete)
            {
                continue;
            }

            // Every append acknowledged before this read began must be within what it saw.
            var mustSee = 0L;
            foreach (var (completed, position) in acked)
            {
                if (completed >= r.Invoked)
                {
                    break;
                }

                mustSee = Math.Max(mustSee, position);
            }

            if (mustSee > length)
            {
                violations++;
                flag(ViolationKind.StaleRead, $"{r.Function.ToString().ToLowerInvariant()} by process {r.Process} (t={r.Invoked}us) saw {length} messages but message {mustSee} was acknowledged before it began");
                continue;
            }

            // And no less than any read that completed before this one began.
            var seen = 0L;
            foreach (var (completed, observedLength) in observed)
            {
                if (completed >= r.Invoked)
                {
                    break;
                }

                seen = Math.Max(seen, observedLength);
            }

            if (seen > length)
            {
                violations++;
                flag(ViolationKind.StaleRead, $"{r.Function.ToString().ToLowerInvariant()} by process {r.Process} (t={r.Invoked}us) saw {length} messages after an earlier read had seen {seen}");
            }
        }

        return violations;
    }

    private static long ObservedLength(Call r)
    {
        if (r.Function == OpFunction.Count)
        {
            return r.CountValue ?? -1;
        }

        var values = r.ReadValues ?? [];
        var from = Math.Max(1, r.ReadFrom ?? 1);

        // An empty read from past the start only bounds the length from above: it proves no minimum.
        return values.Count == 0 && from > 1 ? -1 : from - 1 + values.Count;
    }

    /// <summary>At most one server acknowledges writes in any epoch.</summary>
    private static int CheckEpochs(List<Call> calls, Action<ViolationKind, string> flag)
    {
        var violations = 0;
        var byEpoch = calls.Where(c => c.Function == OpFunction.Append && c.Outcome == OpType.Ok && c.Epoch is not null && c.Server is not null)
            .GroupBy(c => c.Epoch!.Value);
        foreach (var group in byEpoch.OrderBy(g => g.Key))
        {
            var servers = group.Select(c => c.Server!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            if (servers.Count > 1)
            {
                violations++;
                flag(ViolationKind.SplitBrain, $"epoch {group.Key}: writes acknowledged by {string.Join(" and ", servers)}");
            }
        }

        return violations;
    }

    private sealed class Call(int process, OpFunction function, string? value, long invoked)
    {
        public int Process { get; } = process;

        public OpFunction Function { get; } = function;

        public string? Value { get; } = value;

        public long Invoked { get; } = invoked;

        public long Completed { get; set; } = long.MaxValue;

        public OpType Outcome { get; set; } = OpType.Invoke;

        public long? Seq { get; set; }

        public long? ReadFrom { get; set; }

        public long? ReadLimit { get; set; }

        public IReadOnlyList<string>? ReadValues { get; set; }

        public long? CountValue { get; set; }

        public long? Epoch { get; set; }

        public string? Server { get; set; }

        public string? Error { get; set; }
    }
}

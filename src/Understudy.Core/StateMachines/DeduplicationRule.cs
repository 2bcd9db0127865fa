namespace Understudy.Core.StateMachines;

/// <summary>
/// Decides what a write already in the deduplication table is: a retry, answered with its first result and never
/// applied again, or new. It is the one place that says so, both when the primary is asked (before logging) and when
/// a committed entry is applied, so tests can swap in a broken rule (a retried compare-and-set applied twice after a
/// failover) and watch the simulator's linearizability check catch it.
/// </summary>
public interface IDeduplicationRule
{
    /// <summary>What to make of a write, given what the table found for it.</summary>
    DedupLookup Judge(DedupLookup found, ulong clientId, long seq);
}

/// <summary>The rule: the table is right. A write it has applied is a retry, one below the client's watermark too.</summary>
public sealed class TableDeduplicationRule : IDeduplicationRule
{
    public static readonly TableDeduplicationRule Instance = new();

    public DedupLookup Judge(DedupLookup found, ulong clientId, long seq) => found;
}

namespace Understudy.Checking.Linearizability;

/// <summary>
/// A recorded key-value history, one <see cref="KvOperation"/> per call (its invoke and its completion in one
/// record); safe to add to from several threads. Record a call when it ends: its outcome is known then, or it
/// is <see cref="KvOutcome.Unknown"/> when the client gave up on it.
/// </summary>
public sealed class KvHistory : RecordedHistory<KvOperation>
{
    public KvHistory()
    {
    }

    public KvHistory(IEnumerable<KvOperation> operations)
        : base(operations)
    {
    }

    /// <summary>Judges the calls so far; see <see cref="LinearizabilityChecker"/>.</summary>
    public LinearizabilityResult Check(LinearizabilityOptions? options = null, CancellationToken cancellationToken = default) =>
        LinearizabilityChecker.Check(Operations, options, cancellationToken);

    public static KvHistory ReadJsonLines(TextReader reader) => ReadJsonLinesInto(new KvHistory(), reader, "a key-value call");
}

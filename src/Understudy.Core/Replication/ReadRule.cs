using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// Decides whether a server may answer a client's read from its own applied state. It is the one place that says
/// when a read is linearizable, so tests can swap in a broken rule (a backup that answers, a primary that ignores
/// its lease) and watch the simulator's linearizability check catch it.
/// </summary>
public interface IReadRule
{
    ReadDecision Decide(in ReadView view);
}

/// <summary>What a read rule may look at: the answering server's role and what it knows of its own authority.</summary>
/// <param name="Role">The server's role in its epoch.</param>
/// <param name="HasLease">As primary: its lease from the monitor still runs.</param>
/// <param name="EpochCommitted">As primary: its epoch's first entry has committed, so it has applied every earlier write.</param>
/// <param name="HandingOver">As primary: a switchover is under way (the target may be promoted at any moment).</param>
public readonly record struct ReadView(ServerRole Role, bool HasLease, bool EpochCommitted, bool HandingOver);

/// <summary>A read rule's answer: serve, or why not.</summary>
public enum ReadDecision
{
    Serve,
    NotPrimary,
    NoLease,
    EpochNotCommitted,
    HandingOver,
}

/// <summary>
/// The rule: only a primary serves reads, and only while its lease runs (no other server can have been promoted
/// and acknowledged a write it lacks), once its epoch has committed (it has applied every acknowledged write), and
/// not during a switchover.
/// </summary>
public sealed class LeasedPrimaryReadRule : IReadRule
{
    public static readonly LeasedPrimaryReadRule Instance = new();

    public ReadDecision Decide(in ReadView view) => view switch
    {
        { Role: not ServerRole.Primary } => ReadDecision.NotPrimary,
        { HandingOver: true } => ReadDecision.HandingOver,
        { HasLease: false } => ReadDecision.NoLease,
        { EpochCommitted: false } => ReadDecision.EpochNotCommitted,
        _ => ReadDecision.Serve,
    };
}

/// <summary>How a server answers a read once its role has described itself to the read rule.</summary>
internal static class ReadAnswer
{
    /// <summary>Answers <paramref name="request"/> (asking <paramref name="query"/>) from the applied state, or refuses it as the rule says; false when the refusal is "not primary" (the role answers that itself, with its hint).</summary>
    public static bool TryAnswer(ServerNode node, ClientRef client, in ClientRequest request, ReadOnlyMemory<byte> query, in ReadView view)
    {
        var decision = node.ReadRule.Decide(view);
        switch (decision)
        {
            case ReadDecision.Serve:
                node.Answer(client, request, ResponseStatus.Ok, node.State.Machine.Query(query.Span));
                return true;
            case ReadDecision.NotPrimary:
                return false;
            default:
                node.Answer(client, request, ResponseStatus.Unavailable, ServerNode.Text(decision switch
                {
                    ReadDecision.HandingOver => "switchover in progress: retry shortly",
                    ReadDecision.NoLease => "primary has no lease from the monitor: retry shortly",
                    _ => "new primary is committing earlier entries: retry shortly",
                }));
                return true;
        }
    }
}

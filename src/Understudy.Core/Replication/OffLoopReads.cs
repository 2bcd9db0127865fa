using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// Answers a linearizable read on the thread that decoded it, without a turn of the node's loop, when everything the
/// loop would check can be decided from what the loop last published: the server is the primary, not handing over,
/// its epoch has committed, and its lease (checked here, against this thread's clock) still runs. Anything else
/// (a backup, no lease, an uncommitted epoch, a switchover, a stale read's payload, a state machine without
/// <see cref="IConcurrentQueries"/>) is left to the loop, which answers or refuses it as before. Why this is
/// linearizable, and how it is bounded like the loop's check: docs/ARCHITECTURE.md, "Reads without the loop".
/// </summary>
public sealed class OffLoopReads
{
    private readonly IConcurrentQueries? _machine;
    private readonly IReadRule _rule;
    private readonly TimeProvider _time;

    // What the loop last published; null while it may not serve (or has withdrawn). Replaced, never changed.
    private volatile Authority? _authority;

    // Bumped (on the loop) every time authority is published after a withdrawal: an answer is used only if the
    // authority it was read under is still the one in force, with the same stint, after the query.
    private long _stints;

    internal OffLoopReads(IConcurrentQueries? machine, IReadRule rule, TimeProvider time)
    {
        _machine = machine;
        _rule = rule;
        _time = time;
    }

    /// <summary>False when the state machine cannot be queried off the loop: every read goes to the loop.</summary>
    public bool Enabled => _machine is not null;

    /// <summary>
    /// Answers <paramref name="request"/> into <paramref name="response"/> and returns true, or returns false and
    /// leaves the request to the loop (the node's own handling of a client request). Any thread.
    /// </summary>
    public bool TryAnswer(in ClientRequest request, out ClientResponse response)
    {
        response = default;
        if (_machine is null || request.Kind != RequestKind.Read || _authority is not { } authority)
        {
            return false;
        }

        // Read after the request arrived, so a lease still running now ran when the read began.
        var now = _time.GetTimestamp();
        var view = new ReadView(ServerRole.Primary, now < authority.LeaseExpiresAt, authority.EpochCommitted, HandingOver: false);
        if (_rule.Decide(view) != ReadDecision.Serve)
        {
            return false;
        }

        var answer = _machine.QueryConcurrently(request.Payload.Span);

        // A withdrawal (a switchover begun, a snapshot about to replace the state) during the query voids the answer:
        // the fence orders the query's reads before this check, as Withdraw's orders its store before what follows.
        Interlocked.MemoryBarrier();
        if (_authority is not { } after || after.Stint != authority.Stint)
        {
            return false;
        }

        response = new ClientResponse(request.ClientId, request.Seq, ResponseStatus.Ok, authority.Epoch, authority.Self, answer);
        return true;
    }

    /// <summary>
    /// Called on the loop after each burst of inputs: publishes what a read needs, or nothing when this server may not
    /// serve. Publishing late only sends reads to the loop meanwhile; what must not be late goes through <see cref="Withdraw"/>.
    /// </summary>
    internal void Publish(NodeAddress self, long epoch, bool primary, bool handingOver, long leaseExpiresAt, bool epochCommitted)
    {
        if (_machine is null)
        {
            return;
        }

        if (!primary || handingOver)
        {
            _authority = null;
            return;
        }

        var current = _authority;
        if (current is not null && current.Epoch == epoch && current.LeaseExpiresAt == leaseExpiresAt && current.EpochCommitted == epochCommitted)
        {
            return;
        }

        var stint = current is not null && current.Epoch == epoch ? current.Stint : ++_stints;
        _authority = new Authority(self, epoch, leaseExpiresAt, epochCommitted, stint);
    }

    /// <summary>
    /// On the loop, before anything that a read in flight must not see or outlive: a switchover begins (the target
    /// may be promoted without waiting for this lease) or a snapshot replaces the state. Answers read under the old
    /// authority and checked after this are discarded.
    /// </summary>
    internal void Withdraw()
    {
        _authority = null;
        Interlocked.MemoryBarrier();
    }

    private sealed record Authority(NodeAddress Self, long Epoch, long LeaseExpiresAt, bool EpochCommitted, long Stint);
}

using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>A server as the promotion rule sees it.</summary>
public sealed record PromotionCandidate(
    NodeAddress Address,
    int Priority,
    bool Alive,
    bool InSync,
    ServerRole ReportedRole,
    long LastIndex,
    long LastEpoch,
    bool Durable,
    bool LostUnsyncedWrites);

/// <summary>What the promotion rule decides from.</summary>
public sealed record PromotionView(ClusterConfig Config, NodeAddress FailedPrimary, IReadOnlyList<PromotionCandidate> Members);

/// <summary>
/// Picks the server to promote when the primary has failed, or none. The one place that says who may
/// be promoted, so tests can swap in a broken rule and watch the simulator catch it.
/// </summary>
public interface IPromotionRule
{
    NodeAddress ChooseCandidate(PromotionView view);
}

/// <summary>
/// The rule: among alive members of the in-sync set (each holds every acknowledged write), the highest
/// priority (by default the highest port, as in the original project), ties broken by address.
/// An out-of-sync server is never chosen: that could lose acknowledged writes. One exception to the order:
/// a primary that has only restarted (it reports itself a backup, with its log fsynced) is chosen again
/// first, so restarting the cluster (or just the primary) keeps the primary rather than moving it to whichever
/// server has the highest priority. It must still lead a new epoch: a restarted server never leads the epoch
/// it recovered with.
/// </summary>
public sealed class HighestPriorityInSyncRule : IPromotionRule
{
    public static readonly HighestPriorityInSyncRule Instance = new();

    public NodeAddress ChooseCandidate(PromotionView view)
    {
        foreach (var m in view.Members)
        {
            if (m.Address == view.FailedPrimary && m is { Alive: true, InSync: true, LostUnsyncedWrites: false, Durable: true, ReportedRole: ServerRole.Backup })
            {
                return m.Address;
            }
        }

        PromotionCandidate? best = null;
        foreach (var m in view.Members)
        {
            if (!m.Alive || !m.InSync || m.LostUnsyncedWrites)
            {
                continue;
            }

            // The failed primary itself qualifies only once it has restarted (it then reports as a backup).
            if (m.Address == view.FailedPrimary && m.ReportedRole == ServerRole.Primary)
            {
                continue;
            }

            if (best is null || m.Priority > best.Priority || (m.Priority == best.Priority && m.Address > best.Address))
            {
                best = m;
            }
        }

        return best?.Address ?? NodeAddress.None;
    }
}

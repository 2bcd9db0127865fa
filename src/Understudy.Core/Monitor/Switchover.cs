using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// A planned handover an operator asked for: the primary stops taking writes, <see cref="Target"/> catches
/// up, the primary promises never to serve in this epoch again (<see cref="ReadyReceived"/>), and the monitor
/// promotes the target without waiting for a lease. Readiness may arrive while another configuration change
/// (an in-sync change the primary asked for) is being stored: the promotion is then proposed once that change
/// settles (<see cref="PromotionProposed"/>), so the store's answer to one is never taken for the other's.
/// </summary>
internal sealed record Switchover(NodeAddress Target, ClientRef Client, long RequestId, long StartedAt, long Deadline, bool ReadyReceived = false, bool PromotionProposed = false);

/// <summary>
/// An operator's forced promotion of <see cref="Target"/>, in sync or not: no lease is granted while it waits,
/// and it is carried out once the primary's lease surely ran out (or the primary is known dead).
/// </summary>
internal sealed record ForcedPromotion(NodeAddress Target, ClientRef Client, long RequestId);

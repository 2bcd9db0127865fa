using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>Kinds of things the monitor records in its event history.</summary>
public enum MonitorEventKind
{
    ClusterFormed,
    MemberJoined,
    MemberUp,
    MemberRestarted,
    MemberSuspected,
    MemberDown,
    PrimaryFailed,
    AwaitingLeaseExpiry,
    NoCandidate,
    Promoted,
    ClientsNotified,
    InSyncShrunk,
    InSyncExpanded,
    InSyncChangeRefused,
    SwitchoverStarted,
    SwitchoverCompleted,
    SwitchoverFailed,
    ForcedPromotion,
    ConfigStoreRejected,
    MonitorStarted,

    /// <summary>This monitor became the active one of its group (a new term).</summary>
    BecameActive,

    /// <summary>This monitor stopped being the active one: it grants and proposes nothing now.</summary>
    BecameFollower,

    /// <summary>The active monitor's leadership is no longer confirmed by a quorum: no lease is granted until it is.</summary>
    LeadershipUnconfirmed,
}

/// <summary>
/// One entry of the monitor's history. <see cref="At"/> is wall-clock time (for people);
/// <see cref="ElapsedMs"/> is measured on the monotonic clock from the related earlier event
/// (detection to promotion, say).
/// </summary>
public sealed record MonitorEvent(
    long Sequence,
    DateTimeOffset At,
    MonitorEventKind Kind,
    NodeAddress Member,
    long Epoch,
    string Detail,
    double? ElapsedMs = null);

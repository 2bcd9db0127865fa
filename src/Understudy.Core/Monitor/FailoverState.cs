namespace Understudy.Core.Monitor;

/// <summary>The primary of <see cref="Epoch"/> judged failed at <see cref="DetectedAt"/>, and why.</summary>
internal sealed record PrimaryFailure(long Epoch, long DetectedAt, FailureCause Cause);

/// <summary>
/// The failover phase with the data that belongs to it: what the monitor is doing about the primary.
/// <see cref="Failure"/> is carried while failing over (<see cref="FailoverPhase.AwaitingLeaseExpiry"/>,
/// <see cref="FailoverPhase.NoCandidate"/>, <see cref="FailoverPhase.Promoting"/>); <see cref="Switchover"/>
/// by <see cref="FailoverPhase.Switchover"/> and, once the primary is ready, by the
/// <see cref="FailoverPhase.Promoting"/> that completes it; <see cref="Forced"/> by
/// <see cref="FailoverPhase.AwaitingLeaseExpiry"/> and <see cref="FailoverPhase.Promoting"/>.
/// </summary>
internal sealed record FailoverState(FailoverPhase Phase)
{
    public PrimaryFailure? Failure { get; init; }

    public Switchover? Switchover { get; init; }

    public ForcedPromotion? Forced { get; init; }

    /// <summary>
    /// Whether the primary may keep serving: nothing is replacing it. Not while a forced promotion waits (so
    /// even a healthy primary's lease runs out), nor once it promised to step down for a switchover.
    /// </summary>
    public bool LetsPrimaryServe =>
        Phase is FailoverPhase.Stable or FailoverPhase.Switchover &&
        Forced is null &&
        Switchover is not { ReadyReceived: true };
}

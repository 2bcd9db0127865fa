using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// The state a server holds for the role it plays in one epoch: a <see cref="PrimaryRole"/> or a
/// <see cref="BackupRole"/>. <see cref="ServerNode"/> creates a fresh one whenever it enters an epoch or is
/// promoted and drops the old one whole, so no role state is ever carried into an epoch by a forgotten reset.
/// </summary>
internal abstract class EpochRole
{
    /// <summary>Which role this is (what the heartbeat reports).</summary>
    public abstract ServerRole Kind { get; }

    /// <summary>Throws <see cref="InvariantViolationException"/> when the role's own state breaks a rule.</summary>
    public abstract void CheckInvariants();
}

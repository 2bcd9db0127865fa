using Understudy.Protocol;

namespace Understudy.Core.Replication;

// Configurations from the monitor, promotion and moving to a newer epoch: where a role is dropped and made fresh.
public sealed partial class ServerNode
{
    // ------------------------------------------------------------------ configuration and epochs

    private void OnConfig(ClusterConfig config)
    {
        if (config.Epoch < _epoch || config.Version < _config.Version)
        {
            return;
        }

        _config = config;
        if (config.Primary == Self && Backfilling && !(_role is PrimaryRole && _epoch == config.Epoch))
        {
            // The monitor promotes only in-sync members, and a backfilling backup is not one: never expected.
            _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, config.Epoch, Self, _log.LastIndex, $"named primary while the log (to {_log.LastIndex}) does not reach the installed snapshot {_snapshotIndex}: refused"));
            if (config.Epoch > _epoch)
            {
                EnterEpoch(config.Epoch, NodeAddress.None);
            }
        }
        else if (config.Primary == Self && config.Epoch > _recoveredEpoch && !(_role is PrimaryRole && _epoch == config.Epoch))
        {
            BecomePrimary(config.Epoch);
        }
        else if (config.Epoch > _epoch)
        {
            EnterEpoch(config.Epoch, config.Primary);
        }
        else if (_role is PrimaryRole && config.Primary != Self)
        {
            _env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _epoch, config.Primary, 0, $"monitor names {config.Primary} primary of epoch {config.Epoch}, which this server leads"));
        }
        else if (_role is BackupRole { Primary.IsNone: true } backup && config.Epoch == _epoch && config.Primary != Self)
        {
            backup.LearnPrimary(config.Primary);
        }

        (_role as PrimaryRole)?.OnConfig(config);
    }

    private void BecomePrimary(long epoch)
    {
        var now = Now;
        if (epoch > _epoch)
        {
            _epoch = epoch;
            _env.SaveEpoch(epoch);
        }

        // Whatever role this server played before (a backup, or the primary of an earlier epoch) is dropped whole.
        var primary = new PrimaryRole(this, now);
        _role = primary;

        // The epoch's first entry: once it commits, everything before it has too, and reads may be served.
        var start = new LogEntry(primary.EpochStartIndex, epoch, EntryKind.EpochStart, 0, 0, 0, ReadOnlyMemory<byte>.Empty, NextLogTimeMs());
        _log.Append(start);
        _env.AppendLog(new ReadOnlySpan<LogEntry>(in start));
        _env.Report(new ServerEvent(ServerEventKind.BecamePrimary, epoch, Self, start.Index, $"log ends at {_log.LastIndex}, commit index {_commitIndex}"));

        // Tell the monitor at once: its answer carries the lease this primary needs to serve.
        SendHeartbeat(now);
    }

    /// <summary>Moves to a newer epoch as a backup (stepping down if this server was primary).</summary>
    private void EnterEpoch(long epoch, NodeAddress primary)
    {
        if (epoch > _epoch)
        {
            _epoch = epoch;
            _env.SaveEpoch(epoch);
        }

        var previous = _role;
        _role = new BackupRole(this, primary);
        if (previous is PrimaryRole steppedDown)
        {
            steppedDown.FailWaiters(primary, epoch);
            _env.Report(new ServerEvent(ServerEventKind.SteppedDown, epoch, primary, _log.LastIndex, $"epoch {epoch} has {(primary.IsNone ? "another primary" : primary.ToString())}"));
        }
    }
}

using System.Diagnostics;
using Understudy.Core.StateMachines;

namespace Understudy.Core.Replication;

// The node's local invariants: what holds after every input, checked by debug builds and by the simulator.
public sealed partial class ServerNode
{
    // ------------------------------------------------------------------ invariants

    /// <summary>
    /// Checks the local invariants of this server (and of its current role) and throws
    /// <see cref="InvariantViolationException"/>, naming the rule and the values, when one is broken.
    /// They hold after every input; debug builds check them at the end of each, the simulator after each step.
    /// </summary>
    public void CheckInvariants()
    {
        var last = _log.LastIndex;

        // Entries commit only once in the log, and a committed entry is never truncated. The one exception is a
        // snapshot installed from the primary whose log does not reach it yet: committed exactly through the snapshot.
        if (_commitIndex < 0 || (_commitIndex > last && !(Backfilling && _commitIndex == _snapshotIndex)))
        {
            throw new InvariantViolationException("0 <= commit index <= last log index", $"commit index {_commitIndex}, last index {last}, snapshot {_snapshotIndex}");
        }

        // A server whose log does not reach its snapshot yet never leads: it would append after a hole.
        if (Backfilling && _role is PrimaryRole)
        {
            throw new InvariantViolationException("a primary's log reaches its snapshot", $"last index {last}, snapshot {_snapshotIndex}");
        }

        // Every committed entry is applied as soon as it commits.
        if (State.AppliedIndex != _commitIndex)
        {
            throw new InvariantViolationException("applied index == commit index", $"applied index {State.AppliedIndex}, commit index {_commitIndex}");
        }

        // A sync reports at most what it was asked for, and a truncation pulls both back below the cut.
        if (_durableIndex > _syncRequested || _syncRequested > last)
        {
            throw new InvariantViolationException("durable index <= sync requested <= last log index", $"durable {_durableIndex}, requested {_syncRequested}, last index {last}");
        }

        // Entries come from this epoch's primary (or earlier ones), and the epoch never goes back.
        if (_epoch < _log.LastEpoch || _epoch < _recoveredEpoch || _config.Epoch > _epoch)
        {
            throw new InvariantViolationException("log's last epoch, recovered epoch, configuration epoch <= epoch", $"epoch {_epoch}, log's last epoch {_log.LastEpoch}, recovered {_recoveredEpoch}, config epoch {_config.Epoch}");
        }

        // A restarted server never leads the epoch it recovered with.
        if (_role is PrimaryRole && _epoch <= _recoveredEpoch)
        {
            throw new InvariantViolationException("a primary's epoch > the epoch it recovered with", $"epoch {_epoch}, recovered {_recoveredEpoch}");
        }

        // Nothing above a stored snapshot is compacted, nor anything not yet committed.
        if (_compactedBelow > _snapshotIndex + 1 || _compactedBelow > _commitIndex + 1)
        {
            throw new InvariantViolationException("compacted below <= snapshot index + 1 and <= commit index + 1", $"compacted below {_compactedBelow}, snapshot {_snapshotIndex}, commit index {_commitIndex}");
        }

        // The log holds every entry the state machine reads back (the message store's retained messages): compaction
        // stops at that floor, a snapshot install resumes the log just below it, and so must a restart.
        if (State.Machine is ILogBackedStateMachine backed && backed.RetainedFromIndex < _log.FirstIndex)
        {
            throw new InvariantViolationException("log's first index <= the first index the state machine reads", $"log starts at {_log.FirstIndex}, the state machine reads from {backed.RetainedFromIndex}, snapshot {_snapshotIndex}");
        }

        _role.CheckInvariants();
    }

    [Conditional("DEBUG")]
    private void AssertInvariants() => CheckInvariants();
}

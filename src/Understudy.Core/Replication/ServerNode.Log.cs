using System.Buffers;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Core.Replication;

// Commit, apply, snapshots, compaction and truncation: the log as the roles use it.
public sealed partial class ServerNode
{
    // ------------------------------------------------------------------ the log, for the roles

    /// <summary>The next in-sync change request id.</summary>
    internal long NextInSyncRequestId() => ++_nextRequestId;

    /// <summary>How far the commit rule says the primary's log is committed.</summary>
    internal long ComputeCommitIndex() => _commitRule.ComputeCommitIndex(_commitView);

    /// <summary>Commits through <paramref name="index"/> (above the current commit index) and applies what that commits.</summary>
    internal void CommitThrough(long index)
    {
        _commitIndex = index;
        while (State.AppliedIndex < _commitIndex)
        {
            var entry = _log[State.AppliedIndex + 1];
            var result = State.Apply(entry, out var outcome);
            if (entry.Kind == EntryKind.Command && _role is PrimaryRole primary)
            {
                primary.OnApplied(entry, result, outcome == SessionWrite.Expired);
            }
        }

        _log.Evict(Math.Min(_commitIndex, _durableIndex));
        MaybeSnapshot();
    }

    /// <summary>Asks for a snapshot once enough entries were applied since the last one (one at a time).</summary>
    private void MaybeSnapshot()
    {
        var every = Options.SnapshotEveryEntries;
        var applied = State.AppliedIndex;
        if (every == 0 || _snapshotInFlight != 0 || applied - _snapshotIndex < every)
        {
            return;
        }

        if (applied > _durableIndex)
        {
            // A backup applies what the primary committed before its own disk has it. A snapshot stored past this
            // server's durable log would, after a crash, start a log that ends below it: the entries the message
            // store's state still reads from there would be gone. OnLogSynced asks again.
            return;
        }

        var buffer = new ArrayBufferWriter<byte>();
        _snapshotFormat.Write(State, buffer);
        _snapshotInFlight = applied;
        _snapshotInFlightEpoch = _log.EpochAt(applied);
        _snapshotInFlightRetainedFrom = (State.Machine as ILogBackedStateMachine)?.RetainedFromIndex ?? long.MaxValue;
        _env.Report(new ServerEvent(ServerEventKind.SnapshotTaken, _epoch, NodeAddress.None, applied, $"{buffer.WrittenCount} bytes"));
        _env.SaveSnapshot(applied, _snapshotInFlightEpoch, buffer.WrittenMemory);
    }

    /// <summary>
    /// The log may lose what is under the stored snapshot, except what the state machine still reads (retention's
    /// floor) and what an in-sync backup still needs: below min(snapshot + 1, retention floor, backups' match + 1).
    /// The floor is the snapshot's, not the live state's: a restart from the snapshot reads from there.
    /// </summary>
    private void Compact()
    {
        var retainedFrom = _snapshotRetainedFrom;
        if (State.Machine is ILogBackedStateMachine backed)
        {
            retainedFrom = Math.Min(retainedFrom, backed.RetainedFromIndex);
        }

        var inSyncNeed = _role is PrimaryRole primary ? primary.LowestInSyncNeed() : long.MaxValue;
        // One entry under the limit stays: a snapshot transfer resumes a backup's log right after the first entry the
        // machine still reads, and the frame that follows is built on that entry, so its epoch must still be known here.
        // Without it the log could start one above, the transfer would resume one entry too late, and the backup would
        // be sent the snapshot again and again.
        var below = _compactionRule.CompactBelow(new CompactionLimits(_snapshotIndex, retainedFrom, inSyncNeed, _commitIndex, _log.LastIndex)) - 1;
        if (below > _compactedBelow)
        {
            _compactedBelow = below;
            _env.CompactLog(below);
        }
    }

    /// <summary>The log was compacted below this index (entries under it may be gone from disk).</summary>
    public long CompactedBelow => _compactedBelow;

    /// <summary>
    /// Replaces the applied state by a snapshot through <paramref name="index"/> received from the primary, whose log
    /// continues after <paramref name="resumeAfter"/> (of <paramref name="resumeEpoch"/>): the whole log here is dropped
    /// (everything committed in it is also in the snapshot; what is not committed may be dropped). Returns false, changing
    /// nothing, when this server has already applied that far.
    /// </summary>
    internal bool InstallSnapshot(long index, long epoch, long resumeAfter, long resumeEpoch, ReadOnlyMemory<byte> state)
    {
        if (index <= _commitIndex || resumeAfter > index)
        {
            return false;
        }

        // No read off the loop may see the state half replaced, or answer from it once it is.
        Reads.Withdraw();
        State.Restore(state.Span);
        if (State.AppliedIndex != index)
        {
            throw new InvalidOperationException($"snapshot at {index} holds a state applied through {State.AppliedIndex}");
        }

        _log.ResetTo(resumeAfter, resumeEpoch);
        _env.ResetLog(resumeAfter, resumeEpoch);
        _syncGeneration++;
        _durableIndex = resumeAfter;
        _syncRequested = resumeAfter;
        _commitIndex = index;
        _snapshotIndex = index;
        _snapshotEpoch = epoch;
        _snapshotRetainedFrom = (State.Machine as ILogBackedStateMachine)?.RetainedFromIndex ?? long.MaxValue;
        _compactedBelow = resumeAfter + 1;
        _env.Report(new ServerEvent(ServerEventKind.SnapshotInstalled, _epoch, Primary, index, $"state through {index}; the log continues after {resumeAfter}"));
        return true;
    }

    /// <summary>Drops the log from <paramref name="fromIndex"/> on (never a committed entry); syncs in flight no longer count.</summary>
    internal void TruncateLogFrom(long fromIndex)
    {
        _log.TruncateFrom(fromIndex);
        _env.TruncateLog(fromIndex);
        _syncGeneration++;
        _durableIndex = Math.Min(_durableIndex, fromIndex - 1);
        _syncRequested = Math.Min(_syncRequested, fromIndex - 1);
    }
}

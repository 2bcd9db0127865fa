using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// A backup in one epoch: accepts the primary's frames (log matching, truncation of a differing uncommitted
/// suffix, commit as far as the primary says and this server has verified) and owes it acknowledgements.
/// Created fresh each time the server enters an epoch, so what it verified against an earlier primary
/// never counts for the new one.
/// </summary>
internal sealed class BackupRole : EpochRole
{
    private readonly ServerNode _node;

    // How far this server's log is known to agree with the primary of this epoch (from its frames).
    private long _verifiedThrough;

    // The acknowledgement owed for the last frame: sent once the log is durable through what it verified.
    private bool _ackOwed;
    private NodeAddress _ackTo = NodeAddress.None;
    private long _ackEcho;
    private long _ackPrev;

    // The last frame said the primary has committed past it: this backup is streaming a backlog (ServerOptions.CatchUpSyncBytes).
    private bool _catchingUp;

    // Bytes of entries appended since this server last asked for an fsync, while catching up.
    private long _unsyncedBytes;

    // The log's end when this server last asked for an fsync: until the disk has reached it, nothing is answered early.
    private long _syncAskedThrough;

    // The snapshot being received from the primary (null: none): which, and how many of its bytes are held.
    private SnapshotInstall? _install;

    public BackupRole(ServerNode node, NodeAddress primary)
    {
        _node = node;
        Primary = primary;
    }

    public override ServerRole Kind => ServerRole.Backup;

    /// <summary>The primary this backup believes in for the epoch (none until a frame or configuration names it).</summary>
    public NodeAddress Primary { get; private set; }

    /// <summary>The highest commit index the primary of this epoch has announced.</summary>
    public long PrimaryCommitHeard { get; private set; }

    /// <summary>When the last frame from the primary arrived (<see cref="long.MinValue"/> if none this epoch).</summary>
    public long LastPrimaryContact { get; private set; } = long.MinValue;

    private IServerEnvironment Env => _node.Env;

    private ReplicatedLog Log => _node.Log;

    /// <summary>The configuration names the primary of this epoch before any frame from it arrived.</summary>
    public void LearnPrimary(NodeAddress primary) => Primary = primary;

    /// <summary>A frame from the primary of this server's epoch (the node has already fenced older epochs).</summary>
    public void Accept(in Replicate frame)
    {
        LastPrimaryContact = _node.Now;
        PrimaryCommitHeard = Math.Max(PrimaryCommitHeard, frame.CommitIndex);
        if (Primary != frame.From)
        {
            Primary = frame.From;
            Env.Report(new ServerEvent(ServerEventKind.FollowingPrimary, _node.Epoch, frame.From, 0, string.Empty));
        }

        if (frame.PrevIndex > Log.LastIndex)
        {
            Nack(frame, conflictEpoch: 0, conflictIndex: 0);
            return;
        }

        // Below what this log still holds, entries are under its snapshot: committed, so they match any primary's.
        if (frame.PrevIndex > 0 && Log.KnowsEpochAt(frame.PrevIndex) && Log.EpochAt(frame.PrevIndex) != frame.PrevEpoch)
        {
            var conflictEpoch = Log.EpochAt(frame.PrevIndex);
            Nack(frame, conflictEpoch, Log.FirstIndexOfEpoch(conflictEpoch, frame.PrevIndex));
            return;
        }

        var entries = frame.Entries.Span;
        var index = frame.PrevIndex;
        for (var i = 0; i < entries.Length; i++)
        {
            index++;
            if (index <= Log.LastIndex)
            {
                if (!Log.KnowsEpochAt(index) || Log.EpochAt(index) == entries[i].Epoch)
                {
                    continue;
                }

                if (index <= _node.CommitIndex)
                {
                    Env.Report(new ServerEvent(ServerEventKind.SafetyViolation, _node.Epoch, frame.From, index, $"refusing to truncate committed entry {index} (commit index {_node.CommitIndex})"));
                    return;
                }

                Truncate(index);
            }

            var entry = entries[i] with { Index = index };
            Log.Append(entry);
            Env.AppendLog(new ReadOnlySpan<LogEntry>(in entry));
            _unsyncedBytes += entry.WireSize;
        }

        // The primary committed past this frame: more of a backlog follows. Until a frame reaches its commit index
        // (which the last one of the backlog does), frames are acknowledged without waiting for an fsync (see Flush).
        _catchingUp = frame.CommitIndex > frame.LastIndex;
        _verifiedThrough = Math.Max(_verifiedThrough, frame.LastIndex);
        var commit = Math.Min(frame.CommitIndex, _verifiedThrough);
        if (commit > _node.CommitIndex)
        {
            _node.CommitThrough(commit);
        }

        _ackOwed = true;
        _ackTo = frame.From;
        _ackEcho = frame.SentAt;
        _ackPrev = frame.PrevIndex;
    }

    /// <summary>
    /// A chunk of the primary's snapshot. Only the chunk that continues what is held is written, and only when its
    /// checksum holds; every chunk is answered with how much is held, which is where the primary continues. The last
    /// one installs the snapshot (if the whole checks out) and the log continues after the chunk's resume point.
    /// </summary>
    public void Accept(in SnapshotChunk chunk)
    {
        LastPrimaryContact = _node.Now;
        if (Primary != chunk.From)
        {
            Primary = chunk.From;
            Env.Report(new ServerEvent(ServerEventKind.FollowingPrimary, _node.Epoch, chunk.From, 0, string.Empty));
        }

        if (chunk.SnapshotIndex <= _node.CommitIndex)
        {
            // Everything in it is applied here already: the primary may go on from what this log holds.
            _install = null;
            SendSnapshotAck(chunk.SnapshotIndex, chunk.TotalLength, installed: true);
            return;
        }

        if (_install is not { } install || install.Index != chunk.SnapshotIndex || install.TotalLength != chunk.TotalLength)
        {
            var held = Env.BeginSnapshotInstall(chunk.SnapshotIndex, chunk.SnapshotEpoch, chunk.TotalLength);
            install = new SnapshotInstall(chunk.SnapshotIndex, chunk.SnapshotEpoch, chunk.TotalLength, Math.Clamp(held, 0, chunk.TotalLength));
            _install = install;
        }

        if (chunk.Data.Length > 0)
        {
            if (chunk.Offset != install.Received)
            {
                // A chunk before it was lost, or this one repeats what is held: the answer says where to continue.
                Env.Report(new ServerEvent(ServerEventKind.SnapshotChunkRefused, _node.Epoch, chunk.From, chunk.SnapshotIndex, $"chunk at byte {chunk.Offset}, {install.Received} held"));
            }
            else if (SnapshotChunk.ChecksumOf(chunk.Data.Span) != chunk.Checksum || chunk.Last != (chunk.Offset + chunk.Data.Length == chunk.TotalLength))
            {
                Env.Report(new ServerEvent(ServerEventKind.SnapshotChunkRefused, _node.Epoch, chunk.From, chunk.SnapshotIndex, $"chunk at byte {chunk.Offset} is damaged (checksum mismatch): refused"));
            }
            else
            {
                Env.WriteSnapshotChunk(install.Index, chunk.Offset, chunk.Data.Span);
                install.Received += chunk.Data.Length;
            }
        }

        if (install.Received < install.TotalLength)
        {
            SendSnapshotAck(install.Index, install.Received, installed: false);
            return;
        }

        _install = null;
        var state = Env.CompleteSnapshotInstall(install.Index);
        if (state is not { } whole)
        {
            Env.Report(new ServerEvent(ServerEventKind.SnapshotChunkRefused, _node.Epoch, chunk.From, install.Index, "the whole snapshot failed its checks and was discarded: starting again"));
            SendSnapshotAck(install.Index, 0, installed: false);
            return;
        }

        if (_node.InstallSnapshot(install.Index, install.Epoch, chunk.ResumeAfter, chunk.ResumeEpoch, whole))
        {
            // Nothing of the old log is verified against this primary any more; the next frame starts after the reset.
            _verifiedThrough = Log.LastIndex;
            _syncAskedThrough = Math.Min(_syncAskedThrough, _node.DurableIndex);
            _ackOwed = false;
            _ackTo = NodeAddress.None;
        }

        SendSnapshotAck(install.Index, install.TotalLength, installed: true);
    }

    /// <summary>
    /// A client asked a backup: a bounded-staleness read it can serve is answered here (see <see cref="CanServeStaleRead"/>);
    /// anything else is told where the primary is, as far as this server knows.
    /// </summary>
    public void OnClientRequest(ClientRef client, in ClientRequest request)
    {
        if (request.Kind == RequestKind.Read && ReadAnswer.TryAnswer(_node, client, request, request.Payload, new ReadView(ServerRole.Backup, false, false, false)))
        {
            return;
        }

        if (request.Kind == RequestKind.StaleRead && StaleReadPayload.TryDecode(request.Payload, out var maxLag, out var query) && CanServeStaleRead(maxLag))
        {
            _node.Answer(client, request, ResponseStatus.Ok, _node.State.Machine.Query(query.Span));
            return;
        }

        var hint = Primary == _node.Self ? NodeAddress.None : Primary;
        if (hint.IsNone && _node.Config.Epoch >= _node.Epoch && _node.Config.Primary != _node.Self)
        {
            hint = _node.Config.Primary;
        }

        _node.Answer(client, request, ResponseStatus.NotPrimary, ServerNode.Text($"{_node.Self} is not the primary"), hint);
    }

    /// <summary>
    /// Whether this backup's state is fresh enough for a read allowing <paramref name="maxLag"/>: a frame from the
    /// primary of its epoch arrived within that time (by this server's monotonic clock, so no clock comparison
    /// across machines), and everything that frame said was committed is applied here. The answer then holds every
    /// write the primary had acknowledged when it sent the frame; it may miss ones acknowledged since, so such a read
    /// is not linearizable. A backup cut off from its primary (or a primary already replaced) stops hearing frames,
    /// and refuses once the lag has passed.
    /// </summary>
    public bool CanServeStaleRead(TimeSpan maxLag) =>
        !Primary.IsNone
        && LastPrimaryContact != long.MinValue
        && _node.Now - LastPrimaryContact <= _node.Ticks(maxLag)
        && _node.CommitIndex >= PrimaryCommitHeard;

    /// <summary>The log became durable further: the primary is owed an acknowledgement, if one has written.</summary>
    public void OnDurable()
    {
        if (!_ackTo.IsNone)
        {
            _ackOwed = true;
        }
    }

    /// <summary>
    /// False while catching up and less than <see cref="ServerOptions.CatchUpSyncBytes"/> arrived since the last fsync
    /// asked for: the node then leaves the log unsynced for now. The frame that ends the catch-up makes it true again.
    /// </summary>
    public bool SyncDue => !_catchingUp || _unsyncedBytes >= _node.Options.CatchUpSyncBytes;

    // The fsync that gates early answers has completed (a truncation or an install lowers the gate with the log).
    private bool DiskCaughtUp => _node.DurableIndex >= _syncAskedThrough;

    /// <summary>The node asked for an fsync of everything appended so far.</summary>
    public void SyncRequested()
    {
        _unsyncedBytes = 0;
        if (DiskCaughtUp)
        {
            _syncAskedThrough = Log.LastIndex;
        }
    }

    /// <summary>
    /// Sends the acknowledgement owed: once the log is durable through everything verified, or at once while catching
    /// up. An early acknowledgement reports as matched only what is durable, so commits and the in-sync set still
    /// count only entries on disk; it frees the primary's window for the next frames sooner. Only while no fsync asked for
    /// is still on its way: otherwise a disk slower than the network would let the primary fill this server's memory,
    /// without bound, with entries queued for the disk. So about <see cref="ServerOptions.CatchUpSyncBytes"/> and two of the
    /// primary's windows wait for the disk at most.
    /// </summary>
    public void Flush()
    {
        var early = _catchingUp && DiskCaughtUp;
        if (_ackOwed && (early || _node.DurableIndex >= _verifiedThrough))
        {
            SendAck();
        }
    }

    public override void CheckInvariants()
    {
        // Frames only extend what is verified, and a truncation pulls it back below the cut.
        if (_verifiedThrough > Log.LastIndex)
        {
            throw new InvariantViolationException("backup: verified index <= last log index", $"verified {_verifiedThrough}, last index {Log.LastIndex}");
        }

        if (_ackOwed && _ackTo.IsNone)
        {
            throw new InvariantViolationException("backup: an owed acknowledgement has an addressee", $"ack owed to {_ackTo}");
        }

        if (Primary == _node.Self)
        {
            throw new InvariantViolationException("backup: it never follows itself", $"primary {Primary}");
        }

        // A snapshot is received only while this server has applied less than it holds, and never past its end.
        if (_install is { } install && (_node.State.AppliedIndex >= install.Index || install.Received > install.TotalLength || install.Received < 0))
        {
            throw new InvariantViolationException("backup: installing snapshot => applied index < snapshot index and 0 <= received <= total", $"applied {_node.State.AppliedIndex}, snapshot {install.Index}, received {install.Received} of {install.TotalLength}");
        }
    }

    private void Nack(in Replicate frame, long conflictEpoch, long conflictIndex)
    {
        Env.Report(new ServerEvent(ServerEventKind.LogMismatch, _node.Epoch, frame.From, frame.PrevIndex, $"no entry {frame.PrevIndex}@{frame.PrevEpoch}"));
        Env.SendToServer(frame.From, new ReplicateAck(_node.Epoch, _node.Self, _node.Incarnation, false, 0, _verifiedThrough, Log.LastIndex, frame.PrevIndex, conflictEpoch, conflictIndex, frame.SentAt));
    }

    private void SendAck()
    {
        _ackOwed = false;
        var match = Math.Min(_node.DurableIndex, _verifiedThrough);
        Env.SendToServer(_ackTo, new ReplicateAck(_node.Epoch, _node.Self, _node.Incarnation, true, match, _verifiedThrough, Log.LastIndex, _ackPrev, 0, 0, _ackEcho));
    }

    private void SendSnapshotAck(long index, long nextOffset, bool installed) =>
        Env.SendToServer(Primary, new SnapshotAck(_node.Epoch, _node.Self, _node.Incarnation, index, nextOffset, installed, Log.LastIndex));

    private void Truncate(long fromIndex)
    {
        var dropped = Log.LastIndex - fromIndex + 1;
        _node.TruncateLogFrom(fromIndex);
        _verifiedThrough = Math.Min(_verifiedThrough, fromIndex - 1);

        // A sync asked for before the cut is answered in the old generation, which the node ignores: do not wait for it.
        _syncAskedThrough = Math.Min(_syncAskedThrough, _node.DurableIndex);
        Env.Report(new ServerEvent(ServerEventKind.Truncated, _node.Epoch, Primary, fromIndex, $"dropped {dropped} uncommitted entries that differ from the primary's log"));
    }
}

/// <summary>A snapshot a backup is receiving: which one, and how many of its bytes it holds from the start.</summary>
internal sealed class SnapshotInstall(long index, long epoch, long totalLength, long received)
{
    public long Index { get; } = index;

    public long Epoch { get; } = epoch;

    public long TotalLength { get; } = totalLength;

    public long Received { get; set; } = received;
}

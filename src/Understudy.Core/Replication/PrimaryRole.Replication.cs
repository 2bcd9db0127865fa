using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>The primary's side of replication: frames out to each backup, acknowledgements back.</summary>
internal sealed partial class PrimaryRole
{
    /// <summary>
    /// This server was not running for a while (CPU starvation, a GC pause, SIGSTOP): its backups' answers
    /// may be waiting unread. Do not count the stall against them: restart their lag and resend clocks.
    /// (A backup whose connection dropped is still asked out at once; this only delays the slow path.)
    /// </summary>
    public void ForgiveStall(long now)
    {
        foreach (var f in _followers.Values)
        {
            f.LastProgressAt = Math.Max(f.LastProgressAt, now);
            if (f.WaitingSince != long.MinValue)
            {
                f.WaitingSince = now;
            }
        }
    }

    /// <summary>Sends every backup what the inputs since the last flush appended.</summary>
    public void Flush(long now)
    {
        foreach (var f in _followers.Values)
        {
            SendEntries(f, now, keepAlive: false);
        }
    }

    public void OnPeerConnectionLost(NodeAddress peer)
    {
        if (_followers.TryGetValue(peer, out var f))
        {
            f.Disconnected = true;
            f.ResetToProbe();
        }
    }

    /// <summary>A backup's answer to a frame of this epoch.</summary>
    public void OnAck(in ReplicateAck ack)
    {
        if (!_followers.TryGetValue(ack.From, out var f))
        {
            return;
        }

        var now = _node.Now;
        if (f.Incarnation != ack.Incarnation)
        {
            if (f.Incarnation != 0)
            {
                // A restarted backup: what it acknowledged before may not be on its disk any more.
                f.MatchIndex = 0;
                f.ResetToProbe();
            }

            f.Incarnation = ack.Incarnation;
        }

        f.LastAckAt = now;
        f.Disconnected = false;
        if (ack.EchoSentAt != 0)
        {
            f.LastRoundTrip = now - ack.EchoSentAt;
        }

        if (ack.Success)
        {
            // Progress retires outstanding frames and restarts the resend clock; a stale ack retires nothing.
            if (f.Acknowledge(ack.VerifiedIndex) > 0)
            {
                f.WaitingSince = f.Inflight > 0 ? now : long.MinValue;
            }

            if (ack.MatchIndex > f.MatchIndex)
            {
                f.MatchIndex = Math.Min(ack.MatchIndex, Log.LastIndex);
                f.LastProgressAt = now;
            }

            if (f.Probing)
            {
                f.Probing = false;
                f.ForgetInflight();
                f.WaitingSince = long.MinValue;
                f.NextIndex = Math.Min(Math.Max(ack.VerifiedIndex, f.MatchIndex) + 1, Log.LastIndex + 1);
            }

            AdvanceCommit();
            CheckHandover(now);
            return;
        }

        // The backup's log does not hold our entry at the frame's prevIndex: step back and probe.
        long candidate;
        if (ack.ConflictEpoch == 0)
        {
            candidate = ack.LogEnd + 1;
        }
        else
        {
            var last = Log.LastIndexOfEpoch(ack.ConflictEpoch);
            candidate = last > 0 ? last + 1 : ack.ConflictIndex;
        }

        f.Probing = true;
        f.ForgetInflight();
        f.WaitingSince = long.MinValue;
        // Below the compacted log no frame can be built. Try once from the lowest point still possible (the backup
        // may hold it, committed); if even that was refused, only a snapshot can help (SendEntries reports it).
        var next = Math.Min(candidate, ack.PrevIndex);
        var lowest = Log.LowestReplicablePrev + 1;
        if (next < lowest && ack.PrevIndex >= lowest)
        {
            next = lowest;
        }

        f.NextIndex = Math.Clamp(next, 1, Log.LastIndex + 1);
    }

    private void EnsureFollowers(long now)
    {
        foreach (var member in Config.Members)
        {
            if (member.Address != Self && !_followers.ContainsKey(member.Address))
            {
                _followers[member.Address] = new FollowerProgress(member.Address, Log.LastIndex + 1, now);
            }
        }
    }

    /// <summary>The lowest log index an in-sync backup may still be sent: compaction stays below it.</summary>
    internal long LowestInSyncNeed()
    {
        var need = long.MaxValue;
        foreach (var f in _followers.Values)
        {
            if (Config.IsInSync(f.Address) || _pendingAdds.ContainsKey(f.Address))
            {
                need = Math.Min(need, f.MatchIndex + 1);
            }
        }

        return need;
    }

    /// <summary>A backup's answer to a snapshot chunk of this epoch.</summary>
    public void OnSnapshotAck(in SnapshotAck ack)
    {
        if (!_followers.TryGetValue(ack.From, out var f))
        {
            return;
        }

        var now = _node.Now;
        f.LastAckAt = now;
        f.Disconnected = false;
        if (f.Incarnation != ack.Incarnation)
        {
            // A restarted backup: its log and whatever it received may be gone; it says where it is in this answer.
            f.MatchIndex = 0;
            f.Incarnation = ack.Incarnation;
        }

        if (f.Transfer is not { } t || ack.SnapshotIndex != t.Index)
        {
            return;
        }

        if (ack.Installed)
        {
            // Its log now continues after LogEnd; probe from there (its entries up to the snapshot are committed).
            f.Transfer = null;
            _needsSnapshot.Remove(f.Address);
            f.LastProgressAt = now;
            f.MatchIndex = Math.Min(f.MatchIndex, ack.LogEnd);
            f.Probing = true;
            f.ForgetInflight();
            f.WaitingSince = long.MinValue;
            f.NextIndex = Math.Clamp(ack.LogEnd + 1, 1, Log.LastIndex + 1);
            SendEntries(f, now, keepAlive: true);
            return;
        }

        var next = Math.Min(ack.NextOffset, t.TotalLength);
        if (next > t.Acknowledged)
        {
            t.Acknowledged = next;
            t.Sent = Math.Max(t.Sent, next);
            t.RewoundTo = -1;
            f.LastProgressAt = now;
        }
        else if (next < t.Acknowledged)
        {
            // The backup holds less than it did (it restarted, or it discarded a damaged whole): continue from there.
            t.Acknowledged = next;
            t.Sent = next;
            t.RewoundTo = -1;
        }
        else if (!t.Probing && t.Sent > next && t.RewoundTo != next)
        {
            // No progress while more was sent: the chunk at `next` was lost or refused. Send again from there, once.
            t.Sent = next;
            t.RewoundTo = next;
        }

        t.Probing = false;
        t.WaitingSince = t.Sent > t.Acknowledged ? now : long.MinValue;
        SendSnapshotChunks(f, t, now);
    }

    private void SendEntries(FollowerProgress f, long now, bool keepAlive)
    {
        if (f.Transfer is { } transfer)
        {
            SendSnapshotChunks(f, transfer, now);
            return;
        }

        if (!Log.CanReplicateAfter(Math.Min(f.NextIndex - 1, Log.LastIndex)))
        {
            // The entries it needs are compacted away: only a snapshot can catch it up. Until it is installed and
            // the backup has the entries after it, its match index stays behind, so it stays out of (or is asked out
            // of) the in-sync set by the ordinary rules.
            if (_needsSnapshot.Add(f.Address))
            {
                Env.Report(new ServerEvent(ServerEventKind.NeedsSnapshot, Epoch, f.Address, f.NextIndex, $"needs entry {f.NextIndex}, the log starts at {Log.FirstIndex}"));
            }

            StartSnapshotTransfer(f, now);
            return;
        }

        _needsSnapshot.Remove(f.Address);

        var paced = Paced(f);
        if (f.Probing)
        {
            if (f.Inflight > 0)
            {
                return;
            }

            // One frame at a time while probing: a few entries, so a matching backup catches up at once. Its bytes
            // count against the pacer but it does not wait for it: finding where the logs agree must not stall.
            SendFrame(f, now, Math.Min(Options.MaxBatchEntries, 64), paced);
            return;
        }

        var sent = false;
        var held = false;
        var inSync = Config.IsInSync(f.Address);
        while (f.Inflight < Window(f, inSync) && f.NextIndex <= Log.LastIndex)
        {
            if (paced && !_catchUpPacer.MaySend(now))
            {
                held = true; // the next flush or tick sends it, once the pacer allows
                break;
            }

            // A backup far behind gets fuller frames: the window's round trips, not bytes, would pace it otherwise.
            var batch = Log.LastIndex - f.NextIndex + 1 > Options.MaxBatchEntries ? Math.Max(Options.MaxBatchEntries, Options.CatchUpBatchEntries) : Options.MaxBatchEntries;
            var count = SendFrame(f, now, batch, paced);
            f.NextIndex += count;
            sent = true;
        }

        // A held-back backup still hears from the primary every heartbeat interval, not at every commit: empty frames
        // announcing each commit would cost it and the loop what the pacer saves.
        if (held && keepAlive && f.LastSentAt != long.MinValue && now - f.LastSentAt < _node.Ticks(Options.HeartbeatInterval))
        {
            keepAlive = false;
        }

        if (!sent && keepAlive && f.Inflight < Options.MaxInflightFrames)
        {
            SendFrame(f, now, 0, paced: false);
        }
    }

    /// <summary>
    /// How many frames may be outstanding with <paramref name="f"/> before the next is sent:
    /// <see cref="ServerOptions.InSyncFramesInFlight"/> when the next frame to an in-sync backup would not be full (the
    /// writes that arrive while the others are on the wire then go in it, together), <see cref="ServerOptions.MaxInflightFrames"/>
    /// for a full frame, and <see cref="ServerOptions.CatchUpFramesInFlight"/> (at least as many) for a backup outside the
    /// in-sync set, so a backlog streams at the pacer's rate whatever the round trip.
    /// </summary>
    private int Window(FollowerProgress f, bool inSync) =>
        !inSync ? Math.Max(Options.MaxInflightFrames, Options.CatchUpFramesInFlight)
        : Options.InSyncFramesInFlight is { } window && Log.LastIndex - f.NextIndex + 1 < Options.MaxBatchEntries ? window : Options.MaxInflightFrames;

    /// <summary>
    /// A backup outside the in-sync set and not being asked into it: no client write waits for it, so what it is sent
    /// goes through <see cref="CatchUpPacer"/> (<see cref="ServerOptions.CatchUpMaxBytesPerSecond"/>). In-sync backups
    /// are never paced: every acknowledged write waits for them.
    /// </summary>
    private bool Paced(FollowerProgress f) =>
        _catchUpPacer.Enabled && !Config.IsInSync(f.Address) && !_pendingAdds.ContainsKey(f.Address);

    /// <summary>
    /// Begins streaming the newest stored snapshot. Once installed, the backup's log continues after the snapshot, or
    /// lower when the state machine still reads entries below it (the message store reads its messages back from the
    /// log): the transfer is then followed by those entries, which this log still holds (compaction keeps them).
    /// </summary>
    private void StartSnapshotTransfer(FollowerProgress f, long now)
    {
        var index = _node.SnapshotIndex;
        if (index == 0)
        {
            return; // nothing stored yet: compaction happens only under a stored snapshot, so this is a passing state
        }

        var length = Env.SnapshotLength(index);
        if (length <= 0)
        {
            return; // replaced by a newer one a moment ago: the node's snapshot index moves to it when it is saved
        }

        var resumeAfter = Math.Min(index, _node.SnapshotRetainedFrom - 1);
        resumeAfter = Math.Clamp(resumeAfter, Log.LowestReplicablePrev, index);
        if (!Log.KnowsEpochAt(resumeAfter))
        {
            return;
        }

        var transfer = new SnapshotTransfer(index, _node.SnapshotEpoch, length, resumeAfter, Log.EpochAt(resumeAfter));
        f.Transfer = transfer;
        f.ForgetInflight();
        f.WaitingSince = long.MinValue;
        Env.Report(new ServerEvent(ServerEventKind.SnapshotTransferStarted, Epoch, f.Address, index, $"{length} bytes; the log resumes after {resumeAfter}"));
        SendSnapshotChunks(f, transfer, now);
    }

    /// <summary>Sends chunks while the window allows (or one empty probe, to learn where the backup stands).</summary>
    private void SendSnapshotChunks(FollowerProgress f, SnapshotTransfer t, long now)
    {
        if (t.Probing)
        {
            if (t.WaitingSince == long.MinValue)
            {
                SendSnapshotChunk(f, t, now, 0, ReadOnlyMemory<byte>.Empty);
            }

            return;
        }

        var window = (long)Options.SnapshotChunkBytes * Options.SnapshotChunksInFlight;
        var paced = Paced(f);
        while (t.Sent < t.TotalLength && t.Sent - t.Acknowledged < window)
        {
            if (paced && !_catchUpPacer.MaySend(now))
            {
                return; // the next flush or tick sends it, once the pacer allows
            }

            var data = new byte[(int)Math.Min(Options.SnapshotChunkBytes, t.TotalLength - t.Sent)];
            var read = Env.ReadSnapshot(t.Index, t.Sent, data);
            if (read != data.Length)
            {
                // The file went (a newer snapshot replaced it): start over with the newest one.
                f.Transfer = null;
                StartSnapshotTransfer(f, now);
                return;
            }

            SendSnapshotChunk(f, t, now, t.Sent, data);
            t.Sent += read;
            if (paced)
            {
                _catchUpPacer.Spend(read);
            }
        }
    }

    private void SendSnapshotChunk(FollowerProgress f, SnapshotTransfer t, long now, long offset, ReadOnlyMemory<byte> data)
    {
        var last = offset + data.Length == t.TotalLength;
        Env.SendToServer(f.Address, new SnapshotChunk(Epoch, Self, t.Index, t.Epoch, t.TotalLength, offset, SnapshotChunk.ChecksumOf(data.Span), data, last, t.ResumeAfter, t.ResumeEpoch));
        t.ChunksSent++;
        if (t.WaitingSince == long.MinValue)
        {
            t.WaitingSince = now;
        }

        f.LastSentAt = now;
    }

    private int SendFrame(FollowerProgress f, long now, int maxEntries, bool paced)
    {
        var prev = Math.Min(f.NextIndex - 1, Log.LastIndex);
        var commit = _node.CommitIndex;
        var frame = new Replicate(Epoch, Self, prev, Log.EpochAt(prev), commit, now, ReadOnlyMemory<LogEntry>.Empty);

        // Below the window (a backup catching up from disk) the records go out as the bytes they are stored as.
        if (maxEntries > 0 && Log.TrySliceEncoded(prev + 1, maxEntries, Options.MaxBatchBytes, out var run))
        {
            frame = new Replicate(Epoch, Self, prev, frame.PrevEpoch, commit, now, run);
            if (paced)
            {
                _catchUpPacer.Spend(run.Bytes.Length);
            }
        }
        else if (maxEntries > 0)
        {
            var entries = Log.Slice(prev + 1, maxEntries, Options.MaxBatchBytes);
            frame = frame with { Entries = entries };
            if (paced)
            {
                long bytes = 0;
                foreach (var e in entries)
                {
                    bytes += e.WireSize;
                }

                _catchUpPacer.Spend(bytes);
            }
        }

        Env.SendToServer(f.Address, frame);
        if (f.Inflight == 0 || f.WaitingSince == long.MinValue)
        {
            f.WaitingSince = now;
        }

        f.FrameSent(frame.LastIndex);
        f.LastSentAt = now;
        f.LastCommitSent = commit;
        return frame.EntryCount;
    }
}

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
        f.NextIndex = Math.Clamp(Math.Min(candidate, ack.PrevIndex), 1, Log.LastIndex + 1);
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

    private void SendEntries(FollowerProgress f, long now, bool keepAlive)
    {
        if (!Log.CanReplicateAfter(Math.Min(f.NextIndex - 1, Log.LastIndex)))
        {
            // The entries it needs are compacted away: only a snapshot can catch it up, and sending one is not
            // built yet. It gets no frames, so it stays out of (or is asked out of) the in-sync set.
            if (_needsSnapshot.Add(f.Address))
            {
                Env.Report(new ServerEvent(ServerEventKind.NeedsSnapshot, Epoch, f.Address, f.NextIndex, $"needs entry {f.NextIndex}, the log starts at {Log.FirstIndex}"));
            }

            return;
        }

        _needsSnapshot.Remove(f.Address);

        if (f.Probing)
        {
            if (f.Inflight > 0)
            {
                return;
            }

            // One frame at a time while probing: a few entries, so a matching backup catches up at once.
            SendFrame(f, now, Math.Min(Options.MaxBatchEntries, 64));
            return;
        }

        var sent = false;
        while (f.Inflight < Options.MaxInflightFrames && f.NextIndex <= Log.LastIndex)
        {
            var count = SendFrame(f, now, Options.MaxBatchEntries);
            f.NextIndex += count;
            sent = true;
        }

        if (!sent && keepAlive && f.Inflight < Options.MaxInflightFrames)
        {
            SendFrame(f, now, 0);
        }
    }

    private int SendFrame(FollowerProgress f, long now, int maxEntries)
    {
        var prev = Math.Min(f.NextIndex - 1, Log.LastIndex);
        var entries = maxEntries == 0 ? [] : Log.Slice(prev + 1, maxEntries, Options.MaxBatchBytes);
        var commit = _node.CommitIndex;
        Env.SendToServer(f.Address, new Replicate(Epoch, Self, prev, Log.EpochAt(prev), commit, now, entries));
        if (f.Inflight == 0 || f.WaitingSince == long.MinValue)
        {
            f.WaitingSince = now;
        }

        f.FrameSent(prev + entries.Length);
        f.LastSentAt = now;
        f.LastCommitSent = commit;
        return entries.Length;
    }
}

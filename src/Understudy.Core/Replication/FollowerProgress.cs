using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// What the primary knows of one backup: how far its log matches (<see cref="MatchIndex"/>, durable),
/// where to send next, and when it last answered or made progress.
/// </summary>
public sealed class FollowerProgress
{
    internal FollowerProgress(NodeAddress address, long nextIndex, long now)
    {
        Address = address;
        NextIndex = nextIndex;
        LastProgressAt = now;
        LastAckAt = long.MinValue;
        LastSentAt = long.MinValue;
        Probing = true;
    }

    public NodeAddress Address { get; }

    /// <summary>Durable index the backup holds in agreement with this primary.</summary>
    public long MatchIndex { get; internal set; }

    /// <summary>Next index to send.</summary>
    public long NextIndex { get; internal set; }

    /// <summary>True while finding where the logs agree (one frame at a time).</summary>
    public bool Probing { get; internal set; }

    /// <summary>Frames sent and not yet covered by an acknowledgement.</summary>
    public int Inflight => _inflightEnds.Count;

    public ulong Incarnation { get; internal set; }

    public long LastAckAt { get; internal set; }

    public long LastSentAt { get; internal set; }

    /// <summary>When the backup last caught up or advanced its match index.</summary>
    public long LastProgressAt { get; internal set; }

    public long LastCommitSent { get; internal set; }

    /// <summary>Since when frames have been outstanding with no answer (reset by every answer).</summary>
    internal long WaitingSince { get; set; } = long.MinValue;

    // The last index each outstanding frame carried. Acks are cumulative (one ack may cover many frames),
    // so a frame counts as answered once an ack verifies its last index.
    private readonly Queue<long> _inflightEnds = new();

    internal void FrameSent(long lastIndex) => _inflightEnds.Enqueue(lastIndex);

    /// <summary>Retires every frame the acknowledgement covers; returns how many.</summary>
    internal int Acknowledge(long verifiedIndex)
    {
        var retired = 0;
        while (_inflightEnds.TryPeek(out var end) && end <= verifiedIndex)
        {
            _inflightEnds.Dequeue();
            retired++;
        }

        return retired;
    }

    internal void ForgetInflight() => _inflightEnds.Clear();

    /// <summary>The transport saw the connection to it drop since its last answer.</summary>
    public bool Disconnected { get; internal set; }

    /// <summary>Round trip of the last acknowledged frame, in timestamp ticks.</summary>
    public long LastRoundTrip { get; internal set; }

    /// <summary>The snapshot being streamed to it, while it needs entries the log no longer holds (null otherwise).</summary>
    public SnapshotTransfer? Transfer { get; internal set; }

    internal void ResetToProbe()
    {
        Transfer?.Probe();
        Probing = true;
        _inflightEnds.Clear();
        WaitingSince = long.MinValue;
        NextIndex = Math.Max(MatchIndex + 1, 1);
    }
}

/// <summary>
/// One snapshot being streamed to one backup: how far it has acknowledged and how far chunks were sent. Chunks are
/// sent while fewer than a window's worth are unacknowledged; an acknowledgement that does not move forward means a
/// chunk was lost or refused, and sending goes back to where the backup is. After a silence or a broken connection
/// the transfer probes with an empty chunk, and the backup's answer says where to resume.
/// </summary>
public sealed class SnapshotTransfer
{
    internal SnapshotTransfer(long index, long epoch, long totalLength, long resumeAfter, long resumeEpoch)
    {
        Index = index;
        Epoch = epoch;
        TotalLength = totalLength;
        ResumeAfter = resumeAfter;
        ResumeEpoch = resumeEpoch;
    }

    /// <summary>The last entry the snapshot covers.</summary>
    public long Index { get; }

    public long Epoch { get; }

    public long TotalLength { get; }

    /// <summary>Where the backup's log continues once the snapshot is installed (at or below <see cref="Index"/>).</summary>
    public long ResumeAfter { get; }

    public long ResumeEpoch { get; }

    /// <summary>Bytes the backup holds from the start (its last answer).</summary>
    public long Acknowledged { get; internal set; }

    /// <summary>Bytes sent from the start (the next chunk starts here).</summary>
    public long Sent { get; internal set; }

    /// <summary>True until the backup has said where it is (at the start, after a silence or a broken connection).</summary>
    public bool Probing { get; internal set; } = true;

    /// <summary>Chunks sent, counting resent ones (for tests and metrics).</summary>
    public long ChunksSent { get; internal set; }

    /// <summary>Since when sent chunks have gone unanswered (<see cref="long.MinValue"/>: nothing outstanding).</summary>
    internal long WaitingSince { get; set; } = long.MinValue;

    // The offset sending last went back to, so the duplicate answers of the chunks already on their way behind a lost
    // one do not send it again each time: one rewind per gap, then the resend clock.
    internal long RewoundTo { get; set; } = -1;

    internal void Probe()
    {
        Probing = true;
        Sent = Acknowledged;
        WaitingSince = long.MinValue;
        RewoundTo = -1;
    }
}

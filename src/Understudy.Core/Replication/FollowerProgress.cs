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

    internal void ResetToProbe()
    {
        Probing = true;
        _inflightEnds.Clear();
        WaitingSince = long.MinValue;
        NextIndex = Math.Max(MatchIndex + 1, 1);
    }
}

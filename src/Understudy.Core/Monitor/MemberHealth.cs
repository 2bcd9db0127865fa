using Understudy.Core.FailureDetection;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>How the monitor currently judges a server.</summary>
public enum Liveness
{
    /// <summary>Not heard from since the monitor started.</summary>
    Unknown,
    Alive,
    Suspected,

    /// <summary>Known dead: its connection dropped and its port refused a probe.</summary>
    Down,
}

/// <summary>What the monitor knows of one server.</summary>
public sealed class MemberHealth
{
    internal MemberHealth(NodeAddress address, IFailureDetector detector)
    {
        Address = address;
        Detector = detector;
    }

    public NodeAddress Address { get; }

    public ulong Incarnation { get; internal set; }

    public Liveness Liveness { get; internal set; }

    /// <summary>The last heartbeat received, or null.</summary>
    public Heartbeat? LastHeartbeat { get; internal set; }

    /// <summary>Monotonic timestamp of the last heartbeat.</summary>
    public long LastHeartbeatAt { get; internal set; } = long.MinValue;

    /// <summary>The heartbeat connection dropped and no heartbeat has come since.</summary>
    public bool ConnectionLost { get; internal set; }

    /// <summary>A probe of its port has been asked for and not yet answered.</summary>
    internal bool ProbeInFlight { get; set; }

    /// <summary>When to probe again while the connection stays lost and the port has not refused yet.</summary>
    internal long NextProbeAt { get; set; } = long.MaxValue;

    /// <summary>It restarted without fsync=always: what it acknowledged may be gone until it catches up again.</summary>
    public bool LostUnsyncedWrites { get; internal set; }

    public string DownReason { get; internal set; } = string.Empty;

    internal IFailureDetector Detector { get; }
}

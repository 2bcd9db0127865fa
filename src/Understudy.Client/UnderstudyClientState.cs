using Understudy.Protocol;

namespace Understudy.Client;

/// <summary>The answer to one call: the result bytes, and which server answered in which epoch.</summary>
public readonly record struct Reply(ReadOnlyMemory<byte> Payload, long Epoch, NodeAddress Server, int Attempts);

/// <summary>A primary change the client learned of (from the monitor's push or a server's hint).</summary>
public sealed class PrimaryChangedEventArgs(NodeAddress primary, long epoch, string source) : EventArgs
{
    public NodeAddress Primary { get; } = primary;

    public long Epoch { get; } = epoch;

    public string Source { get; } = source;
}

/// <summary>
/// What a client knows of the cluster at one instant: one immutable object, replaced whole, so the primary, its epoch
/// and the monitor read from it always belong together, from any thread.
/// </summary>
public sealed record UnderstudyClientState(NodeAddress Primary, long Epoch, NodeAddress ConnectedMonitor)
{
    public static readonly UnderstudyClientState Initial = new(NodeAddress.None, 0, NodeAddress.None);
}

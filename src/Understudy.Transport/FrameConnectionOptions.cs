using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// Called for each message a <see cref="FrameConnection"/> receives, in order, one at a time: the next
/// frame is not read until the returned task completes, so a slow handler slows the peer (TCP pushes back)
/// instead of buffering without bound. <paramref name="cancellationToken"/> fires when the connection closes.
/// </summary>
public delegate ValueTask FrameHandler(FrameConnection connection, IMessage message, CancellationToken cancellationToken);

/// <summary>How a <see cref="FrameConnection"/> introduces itself and what it accepts.</summary>
public sealed record FrameConnectionOptions
{
    /// <summary>Default bound on frames queued for a peer that does not read.</summary>
    public const long DefaultMaxPendingSendBytes = 64L * 1024 * 1024;

    /// <summary>What this side is, told to the peer in its Hello.</summary>
    public required PeerRole Role { get; init; }

    /// <summary>This side's address (its identity; <see cref="NodeAddress.None"/> for clients).</summary>
    public NodeAddress LocalAddress { get; init; } = NodeAddress.None;

    /// <summary>Changes at every process start, so a peer can tell a restarted process from the old one.</summary>
    public ulong Incarnation { get; init; }

    /// <summary>
    /// The state machine a server runs, said in its Hello; empty for monitors and clients. A server connection
    /// between two servers that name different ones is refused during the handshake.
    /// </summary>
    public string StateMachine { get; init; } = string.Empty;

    /// <summary>
    /// The shared cluster key (at least 16 bytes), or empty for none. With a key, a peer must authenticate
    /// (unless its role is in <see cref="UnauthenticatedRoles"/>), and when both sides do, every frame is signed.
    /// </summary>
    public ReadOnlyMemory<byte> ClusterKey { get; init; }

    /// <summary>
    /// Roles let in without the key even when one is set: clients and operators on a port that also serves
    /// members. A connection that let one in has <see cref="FrameConnection.IsAuthenticated"/> false, and its
    /// owner must not act on member messages from it.
    /// </summary>
    public IReadOnlyCollection<PeerRole> UnauthenticatedRoles { get; init; } = [];

    /// <summary>Largest frame accepted or sent (length prefix value).</summary>
    public int MaxFrameSize { get; init; } = MessageCodec.DefaultMaxFrameSize;

    /// <summary>
    /// Bytes that may wait for a peer (queued and being flushed) before the connection is closed as stuck.
    /// </summary>
    public long MaxPendingSendBytes { get; init; } = DefaultMaxPendingSendBytes;

    /// <summary>How long the peer has to send its Hello (and prove the key).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a closing connection may spend sending what is queued (and, after a protocol error, reading what the peer still sends) before it is cut.</summary>
    public TimeSpan CloseTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Called on the reader once it has handed the handler every whole frame of one read, before it waits for more:
    /// the end of what arrived together. An owner that held frames while handling them
    /// (<see cref="FrameConnection.SendHeld{T}"/>) writes them here, together. Must not block or throw.
    /// </summary>
    public Action<FrameConnection>? AfterReadBatch { get; init; }

    /// <summary>Where connection problems are logged, one line each.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    internal bool HasKey => !ClusterKey.IsEmpty;

    internal void Validate()
    {
        if (HasKey && ClusterKey.Length < FrameAuthenticator.MinimumKeyLength)
        {
            throw new ArgumentException($"The cluster key has {ClusterKey.Length} bytes; use at least {FrameAuthenticator.MinimumKeyLength} random bytes.", nameof(ClusterKey));
        }

        if (MaxFrameSize < 64)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFrameSize), MaxFrameSize, "MaxFrameSize must be at least 64 bytes (a Hello must fit).");
        }

        if (MaxPendingSendBytes < MaxFrameSize)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPendingSendBytes), MaxPendingSendBytes, "MaxPendingSendBytes must hold at least one frame of MaxFrameSize.");
        }
    }
}

/// <summary>Why a connection ended, and a line saying so.</summary>
public readonly record struct ConnectionClosed(TransportError Reason, string Detail)
{
    public override string ToString() => $"{Reason}: {Detail}";
}

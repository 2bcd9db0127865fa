namespace Understudy.Transport;

/// <summary>Why a connection could not be made, or why it ended.</summary>
public enum TransportError
{
    /// <summary>This side closed it (dispose or shutdown).</summary>
    LocalClose = 1,

    /// <summary>The peer closed its end cleanly.</summary>
    PeerClosed,

    /// <summary>The connection broke (reset, aborted, write failed).</summary>
    Reset,

    /// <summary>Nothing listens at the address: the process there is gone or not started.</summary>
    Refused,

    /// <summary>No answer in time (connect or handshake).</summary>
    TimedOut,

    /// <summary>The address cannot be reached or resolved.</summary>
    Unreachable,

    /// <summary>The port asked to listen on is taken by another process.</summary>
    AddressInUse,

    /// <summary>The peer broke the protocol; it was sent a <c>ProtocolError</c>.</summary>
    ProtocolViolation,

    /// <summary>The peer sent a <c>ProtocolError</c> saying what this side did wrong.</summary>
    RejectedByPeer,

    /// <summary>The peer could not prove it holds the cluster key, or would not authenticate.</summary>
    AuthenticationFailed,

    /// <summary>The peer stopped reading and the frames waiting for it passed the limit.</summary>
    SendQueueFull,

    /// <summary>The owner's message handler threw; the connection was closed rather than left half-served.</summary>
    HandlerFailed,
}

/// <summary>
/// A connection or listener could not be set up. <see cref="Exception.Message"/> is one line a person
/// can act on; <see cref="Error"/> says which kind of failure it was for code that reacts to it.
/// </summary>
public sealed class TransportException : Exception
{
    public TransportException(TransportError error, string message)
        : base(message) => Error = error;

    public TransportException(TransportError error, string message, Exception inner)
        : base(message, inner) => Error = error;

    public TransportException()
    {
    }

    public TransportException(string message)
        : base(message)
    {
    }

    public TransportException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>What went wrong.</summary>
    public TransportError Error { get; } = TransportError.Reset;
}

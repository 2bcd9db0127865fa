using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>Every line the transport logs, one place, EventIds 2000-2999.</summary>
internal static partial class LogMessages
{
    // 2000-2019: one framed connection.
    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Connection {ConnectionId} with {Peer}: {Problem}; sent ProtocolError {Code} and closed it")]
    public static partial void ProtocolViolation(ILogger logger, long connectionId, FrameConnection peer, string problem, ProtocolErrorCode code);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Connection {ConnectionId} with {Peer} was refused by the peer ({Code}): {Problem}")]
    public static partial void RejectedByPeer(ILogger logger, long connectionId, FrameConnection peer, ProtocolErrorCode code, string problem);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "Connection {ConnectionId} with {Peer} closed: {PendingBytes} bytes are waiting to be sent, over the limit of {Limit}; the peer has stopped reading")]
    public static partial void SendQueueFull(ILogger logger, long connectionId, FrameConnection peer, long pendingBytes, long limit);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Connection {ConnectionId} with {Peer} closed: the message handler threw on {MessageType}")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, long connectionId, FrameConnection peer, MessageType messageType);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "Connection {ConnectionId} with {Peer} ended in the middle of a frame ({Bytes} bytes of it had arrived)")]
    public static partial void TruncatedFrame(ILogger logger, long connectionId, FrameConnection peer, long bytes);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Warning, Message = "Connection {ConnectionId} with {Peer}: no Hello within {Timeout}; closed it")]
    public static partial void HandshakeTimedOut(ILogger logger, long connectionId, FrameConnection peer, TimeSpan timeout);

    [LoggerMessage(EventId = 2007, Level = LogLevel.Debug, Message = "Connection {ConnectionId} with {Peer} is open (authenticated: {Authenticated})")]
    public static partial void ConnectionOpened(ILogger logger, long connectionId, FrameConnection peer, bool authenticated);

    [LoggerMessage(EventId = 2008, Level = LogLevel.Debug, Message = "Connection {ConnectionId} with {Peer} closed: {Reason}: {Detail}")]
    public static partial void ConnectionClosed(ILogger logger, long connectionId, FrameConnection peer, TransportError reason, string detail);

    // 2020-2029: listening and accepting.
    [LoggerMessage(EventId = 2020, Level = LogLevel.Information, Message = "Listening on {Address}")]
    public static partial void Listening(ILogger logger, NodeAddress address);

    [LoggerMessage(EventId = 2021, Level = LogLevel.Warning, Message = "Accepting a connection on {Address} failed: {Problem}; still listening")]
    public static partial void AcceptFailed(ILogger logger, NodeAddress address, string problem);

    [LoggerMessage(EventId = 2022, Level = LogLevel.Error, Message = "The owner's callback for new connection {ConnectionId} with {Peer} threw; the connection was closed")]
    public static partial void OnConnectedFailed(ILogger logger, Exception exception, long connectionId, FrameConnection peer);

    // 2030-2039: reconnecting peers.
    [LoggerMessage(EventId = 2030, Level = LogLevel.Information, Message = "Connected to {Endpoint} ({Peer})")]
    public static partial void PeerConnected(ILogger logger, NodeAddress endpoint, FrameConnection peer);

    [LoggerMessage(EventId = 2031, Level = LogLevel.Warning, Message = "Lost the connection to {Endpoint} ({Reason}: {Detail}); reconnecting with backoff up to {MaxBackoff}")]
    public static partial void PeerLost(ILogger logger, NodeAddress endpoint, TransportError reason, string detail, TimeSpan maxBackoff);

    [LoggerMessage(EventId = 2032, Level = LogLevel.Warning, Message = "Waiting for {Endpoint} ({Reason}: {Detail}); retrying with backoff up to {MaxBackoff}")]
    public static partial void PeerWaiting(ILogger logger, NodeAddress endpoint, TransportError reason, string detail, TimeSpan maxBackoff);

    [LoggerMessage(EventId = 2033, Level = LogLevel.Error, Message = "The owner's Connected or Disconnected handler for {Endpoint} threw; reconnecting carries on")]
    public static partial void PeerEventFailed(ILogger logger, Exception exception, NodeAddress endpoint);
}

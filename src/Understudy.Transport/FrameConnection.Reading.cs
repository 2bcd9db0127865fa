using System.Buffers;
using System.Buffers.Binary;
using Understudy.Protocol;

namespace Understudy.Transport;

// The read loop: frames off the pipe, checked, decoded and handed to the owner's handler.
public sealed partial class FrameConnection
{
    private async Task ReadLoopAsync()
    {
        var token = _abort.Token;
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync(token).ConfigureAwait(false);
                var buffer = result.Buffer;
                try
                {
                    while (TryTakeFrame(ref buffer, out var type, out var body))
                    {
                        if (type == MessageType.ProtocolError)
                        {
                            OnPeerError(body);
                            _input.AdvanceTo(result.Buffer.End);
                            return;
                        }

                        var message = DecodeFrame(type, body);
                        if (message.Type == MessageType.Hello)
                        {
                            throw new FrameViolationException(ProtocolErrorCode.UnexpectedMessage, "a second Hello after the handshake");
                        }

                        Interlocked.Increment(ref _framesReceived);
                        try
                        {
                            await _handler(this, message, token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (token.IsCancellationRequested)
                        {
                            throw;
                        }
                        catch (Exception e)
                        {
                            LogMessages.HandlerFailed(_logger, e, Id, this, message.Type);
                            _input.AdvanceTo(result.Buffer.End);
                            BeginClose(new ConnectionClosed(TransportError.HandlerFailed, $"the message handler threw on {message.Type}: {e.Message}"));
                            return;
                        }
                    }
                }
                catch (FrameViolationException e)
                {
                    _input.AdvanceTo(result.Buffer.End);
                    OnViolation(e.Code, e.Message);
                    return;
                }

                _options.AfterReadBatch?.Invoke(this);

                if (result.IsCompleted)
                {
                    var leftover = buffer.Length;
                    _input.AdvanceTo(buffer.End);
                    if (leftover == 0)
                    {
                        BeginClose(new ConnectionClosed(TransportError.PeerClosed, "the peer closed the connection"));
                    }
                    else
                    {
                        LogMessages.TruncatedFrame(_logger, Id, this, leftover);
                        BeginClose(new ConnectionClosed(TransportError.PeerClosed, $"the peer closed the connection in the middle of a frame ({leftover} bytes of it had arrived)"));
                    }

                    return;
                }

                _input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Closing: the closer cancelled the read.
        }
        catch (Exception e)
        {
            BeginClose(new ConnectionClosed(TransportError.Reset, $"the connection broke: {e.Message}"), graceful: false);
        }
    }

    /// <summary>
    /// Takes one frame off <paramref name="buffer"/>, checking its length against the limit before any of
    /// its body is awaited, and its signature when the connection is authenticated.
    /// </summary>
    private bool TryTakeFrame(ref ReadOnlySequence<byte> buffer, out MessageType type, out ReadOnlySequence<byte> body)
    {
        var start = buffer;
        try
        {
            if (!MessageCodec.TryReadFrame(ref buffer, _options.MaxFrameSize, out type, out body))
            {
                return false;
            }
        }
        catch (ProtocolException e)
        {
            throw BadHeader(start, e.Message);
        }

        // A ProtocolError is never signed: a peer whose key is wrong must still be able to say so,
        // and all a forged one can do is close the connection, as a forged reset could.
        if (_receiveAuth is null || type == MessageType.ProtocolError)
        {
            return true;
        }

        if (body.Length < FrameAuthenticator.TrailerSize)
        {
            throw new FrameViolationException(ProtocolErrorCode.AuthenticationFailed, $"a {type} frame of {body.Length} bytes is too short to carry its authentication trailer");
        }

        var unsigned = MessageCodec.HeaderSize + body.Length - FrameAuthenticator.TrailerSize;
        var problem = _receiveAuth.Verify(start.Slice(0, unsigned), body.Slice(body.Length - FrameAuthenticator.TrailerSize));
        if (problem is not null)
        {
            throw new FrameViolationException(ProtocolErrorCode.AuthenticationFailed, problem);
        }

        body = body.Slice(0, body.Length - FrameAuthenticator.TrailerSize);
        return true;
    }

    private FrameViolationException BadHeader(ReadOnlySequence<byte> start, string problem)
    {
        Span<byte> head = stackalloc byte[4];
        start.Slice(0, 4).CopyTo(head);
        if (!_handshakeDone && LooksLikeHttp(head))
        {
            return new FrameViolationException(ProtocolErrorCode.MalformedFrame, "the first bytes look like an HTTP request, but this port speaks Understudy's binary protocol (the HTTP endpoints are on the dashboard port)");
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(head);
        var code = length > _options.MaxFrameSize ? ProtocolErrorCode.FrameTooLarge : ProtocolErrorCode.MalformedFrame;
        return new FrameViolationException(code, problem);
    }

    private static bool LooksLikeHttp(ReadOnlySpan<byte> head) =>
        head.SequenceEqual("GET "u8) || head.SequenceEqual("POST"u8) || head.SequenceEqual("PUT "u8) || head.SequenceEqual("HEAD"u8);

    private static IMessage DecodeFrame(MessageType type, ReadOnlySequence<byte> body)
    {
        try
        {
            return MessageCodec.Decode(type, body);
        }
        catch (ProtocolException e) when (type == MessageType.Hello && e.Message.Contains("protocol version", StringComparison.Ordinal))
        {
            throw new FrameViolationException(ProtocolErrorCode.VersionMismatch, e.Message);
        }
        catch (Exception e)
        {
            // Whatever a parser throws on hostile bytes is the peer's fault, not a reason to stop the process.
            throw new FrameViolationException(ProtocolErrorCode.MalformedFrame, e.Message);
        }
    }

    /// <summary>The peer sent a ProtocolError: log it, close, and say why.</summary>
    private ConnectionClosed OnPeerError(ReadOnlySequence<byte> body)
    {
        ProtocolError error;
        try
        {
            error = (ProtocolError)MessageCodec.Decode(MessageType.ProtocolError, body);
        }
        catch (ProtocolException e)
        {
            error = new ProtocolError(ProtocolErrorCode.MalformedFrame, $"(an unreadable ProtocolError: {e.Message})");
        }

        LogMessages.RejectedByPeer(_logger, Id, this, error.Code, error.Message);
        var reason = error.Code == ProtocolErrorCode.AuthenticationFailed ? TransportError.AuthenticationFailed : TransportError.RejectedByPeer;
        var closed = new ConnectionClosed(reason, $"the peer refused this connection ({error.Code}): {error.Message}");
        BeginClose(closed);
        return closed;
    }

    /// <summary>The peer broke the protocol: tell it why, log one line, close after it has had the chance to read that.</summary>
    private ConnectionClosed OnViolation(ProtocolErrorCode code, string problem)
    {
        if (problem.Length > 1000)
        {
            problem = problem[..1000];
        }

        LogMessages.ProtocolViolation(_logger, Id, this, problem, code);
        var reason = code == ProtocolErrorCode.AuthenticationFailed ? TransportError.AuthenticationFailed : TransportError.ProtocolViolation;
        var closed = new ConnectionClosed(reason, problem);
        BeginClose(closed, new ProtocolError(code, problem), linger: true);
        return closed;
    }
}

using Understudy.Protocol;

namespace Understudy.Transport;

// The handshake: Hellos both ways, signed when both sides hold the cluster key.
public sealed partial class FrameConnection
{
    private async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        _writer = Task.Run(WriteLoopAsync, CancellationToken.None);
        lock (_sendLock)
        {
            EnqueueLocked(LocalHello, LocalHello.Size, sign: false);
            _writerSignaled = true;
        }

        _wake.Writer.TryWrite(true);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _abort.Token);
        deadline.CancelAfter(_options.HandshakeTimeout);
        try
        {
            var first = await ReadHandshakeFrameAsync(deadline.Token).ConfigureAwait(false);
            if (first is not Hello hello)
            {
                throw new FrameViolationException(ProtocolErrorCode.UnexpectedMessage, $"the first frame must be a Hello, not {first.Type}");
            }

            _peerHello = hello;
            if (_options.HasKey && !hello.Authenticated && !_options.UnauthenticatedRoles.Contains(hello.Role))
            {
                throw new FrameViolationException(ProtocolErrorCode.AuthenticationFailed, $"the {hello.Role.ToString().ToLowerInvariant()} {hello.From} did not authenticate, and a cluster key is required here; give both sides the same cluster key");
            }

            // Servers replicate one log; one whose state machine differs could not apply it (and its snapshots would not
            // restore). Refused here, before anything is replicated; a side that does not say is not judged.
            if (hello.Role == PeerRole.Server && _options.Role == PeerRole.Server && hello.StateMachine.Length > 0 && _options.StateMachine.Length > 0
                && !string.Equals(hello.StateMachine, _options.StateMachine, StringComparison.Ordinal))
            {
                throw new FrameViolationException(ProtocolErrorCode.StateMachineMismatch, $"the server {hello.From} runs the state machine '{hello.StateMachine}' but {LocalHello.From} runs '{_options.StateMachine}'; every server of a cluster must run the same one (--state-machine)");
            }

            // Accepting the peer is said by repeating the Hello: neither side reports the connection open before
            // it knows the other took it, so a refused peer sees the refusal, not a connection that drops at once.
            // When both hold the key the repeat is the first signed frame, and proves the key.
            var signed = _options.HasKey && hello.Authenticated;
            if (signed)
            {
                _receiveAuth = new FrameAuthenticator(_options.ClusterKey.Span, LocalHello.Nonce, hello.From);
            }

            lock (_sendLock)
            {
                if (signed)
                {
                    _sendAuth = new FrameAuthenticator(_options.ClusterKey.Span, hello.Nonce, LocalHello.From);
                }

                EnqueueLocked(LocalHello, LocalHello.Size, sign: signed);
                _writerSignaled = true;
            }

            _wake.Writer.TryWrite(true);
            var confirmation = await ReadHandshakeFrameAsync(deadline.Token).ConfigureAwait(false);
            if (confirmation is not Hello again || again != hello)
            {
                throw new FrameViolationException(ProtocolErrorCode.UnexpectedMessage, $"the second frame must repeat the Hello, but it is a different {confirmation.Type}");
            }

            IsAuthenticated = signed;
            _handshakeDone = true;
            LogMessages.ConnectionOpened(_logger, Id, this, IsAuthenticated);
            return;
        }
        catch (FrameViolationException e)
        {
            OnViolation(e.Code, e.Message);
        }
        catch (PeerRejectedException)
        {
            // Already closing with the peer's reason.
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            BeginClose(new ConnectionClosed(TransportError.LocalClose, "handshake canceled"), graceful: false);
            await _closed.Task.ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException) when (!_abort.IsCancellationRequested)
        {
            LogMessages.HandshakeTimedOut(_logger, Id, this, _options.HandshakeTimeout);
            BeginClose(new ConnectionClosed(TransportError.TimedOut, $"no Hello from {RemoteEndPoint} within {_options.HandshakeTimeout.TotalSeconds:0.###} s"), graceful: false);
        }
        catch (EndOfInputException e)
        {
            BeginClose(e.Closed, graceful: false);
        }
        catch (Exception e)
        {
            // The connection broke under the handshake; if it was already closing, that reason stands.
            BeginClose(new ConnectionClosed(TransportError.Reset, $"the connection broke during the handshake: {e.Message}"), graceful: false);
        }

        var closed = await _closed.Task.ConfigureAwait(false);
        throw new TransportException(closed.Reason, $"Handshake with {RemoteEndPoint} failed: {closed.Detail}.");
    }

    /// <summary>Reads one whole frame during the handshake (before the read loop runs).</summary>
    private async ValueTask<IMessage> ReadHandshakeFrameAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            IMessage? message = null;
            try
            {
                if (TryTakeFrame(ref buffer, out var type, out var body))
                {
                    message = type == MessageType.ProtocolError ? throw new PeerRejectedException(OnPeerError(body)) : DecodeFrame(type, body);
                }
            }
            catch
            {
                _input.AdvanceTo(result.Buffer.End);
                throw;
            }

            if (message is not null)
            {
                _input.AdvanceTo(buffer.Start);
                return message;
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                // A port probe connects and leaves at once: that is routine, not worth a warning.
                throw new EndOfInputException(new ConnectionClosed(TransportError.PeerClosed, "the peer closed the connection before its handshake finished"));
            }
        }
    }
}

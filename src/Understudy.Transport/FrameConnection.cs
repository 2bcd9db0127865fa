// Longer than the usual 500 lines on purpose: the handshake, the reader, the writer and the close are one state
// machine over one send queue and its lock; split across files they would share private state without being
// easier to follow. Framing rules live in MessageCodec, authentication in FrameAuthenticator.
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// A connection that speaks frames: it opens with a Hello both ways (and, when both sides hold the
/// cluster key, a signed Hello that proves it), then hands every message it reads to the owner's
/// <see cref="FrameHandler"/> and sends whatever the owner passes to <see cref="Send{T}"/>.
/// <para>
/// <see cref="Send{T}"/> never blocks and may be called from any thread: it encodes the frame into a
/// queue under a short lock, and one writer task drains the queue, flushing only when it is empty so
/// that a burst of frames shares one system call. A peer that breaks the protocol is sent a
/// <see cref="ProtocolError"/> and disconnected, with one log line; nothing it sends can throw out of
/// the connection. <see cref="Closed"/> completes, with the reason, however the connection ends.
/// </para>
/// </summary>
public sealed class FrameConnection : IAsyncDisposable
{
    private static long _nextId;

    private readonly ITransportConnection _transport;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly FrameConnectionOptions _options;
    private readonly FrameHandler _handler;
    private readonly ILogger _logger;
    private readonly Lock _sendLock = new();
    private readonly Channel<bool> _wake = Channel.CreateUnbounded<bool>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _abort = new();
    private readonly TaskCompletionSource<ConnectionClosed> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<ConnectionClosed> _closingStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guarded by _sendLock: the queue, its accounting, the sending authenticator (its counter must
    // follow queue order) and whether the connection is closing.
    private SendBuffer _pending = new();
    private long _pendingBytes;
    private bool _writerSignaled;
    private bool _closing;
    private ConnectionClosed _closeInfo;
    private FrameAuthenticator? _sendAuth;
    private long _framesSent;

    // Also guarded by _sendLock: the writer is between taking a batch and finishing its write (a frame sent now
    // would overtake that batch), and the buffer a frame sent now is encoded into.
    private bool _writing;
    private readonly ArrayBufferWriter<byte> _nowBuffer = new(256);
    private long _sentNow;

    // Owned by the reading side: the handshake, then the read loop.
    private FrameAuthenticator? _receiveAuth;
    private long _framesReceived;
    private Hello _peerHello;
    private bool _handshakeDone;

    private long _flushes;
    private Task _writer = Task.CompletedTask;
    private Task _reader = Task.CompletedTask;

    private FrameConnection(ITransportConnection transport, FrameConnectionOptions options, FrameHandler handler)
    {
        _transport = transport;
        _input = transport.Input;
        _output = transport.Output;
        _options = options;
        _handler = handler;
        _logger = options.Logger;
        Id = Interlocked.Increment(ref _nextId);
        LocalHello = new Hello(options.Role, options.LocalAddress, options.Incarnation, RandomNonce(), options.HasKey, options.StateMachine);
    }

    /// <summary>Unique in this process; owners key client connections by it.</summary>
    public long Id { get; }

    /// <summary>The Hello this side sent (its nonce is what the peer signs frames for).</summary>
    public Hello LocalHello { get; }

    /// <summary>The Hello the peer sent: its role, address and incarnation.</summary>
    public Hello PeerHello => _peerHello;

    /// <summary>The peer's address as it announced it (<see cref="NodeAddress.None"/> for clients).</summary>
    public NodeAddress PeerAddress => _peerHello.From;

    /// <summary>Where the connection comes from at the transport level (IP and port for TCP).</summary>
    public string RemoteEndPoint => _transport.RemoteEndPoint;

    /// <summary>True when both sides proved the cluster key and every frame is signed.</summary>
    public bool IsAuthenticated { get; private set; }

    /// <summary>Completes when the connection has ended, with why. Never faults.</summary>
    public Task<ConnectionClosed> Closed => _closed.Task;

    /// <summary>
    /// Completes as soon as the connection begins to close (the peer went away, a violation, a local close), with
    /// the first reason; <see cref="Closed"/> follows once queued frames are flushed and both loops have stopped.
    /// For owners that must react to a lost peer at once (the monitor's crash detection). Never faults.
    /// </summary>
    public Task<ConnectionClosed> Closing => _closingStarted.Task;

    /// <summary>True once the connection has begun to close; <see cref="Send{T}"/> then returns false.</summary>
    public bool IsClosing
    {
        get
        {
            lock (_sendLock)
            {
                return _closing;
            }
        }
    }

    /// <summary>Bytes queued or being flushed to the peer: a sender can hold back when this grows.</summary>
    public long PendingSendBytes
    {
        get
        {
            lock (_sendLock)
            {
                return _pendingBytes;
            }
        }
    }

    /// <summary>Frames queued by this side since the connection opened (Hellos included).</summary>
    public long FramesSent => Interlocked.Read(ref _framesSent);

    /// <summary>Messages delivered to the handler.</summary>
    public long FramesReceived => Interlocked.Read(ref _framesReceived);

    /// <summary>Flushes by the writer task; far fewer than <see cref="FramesSent"/> when frames are batched.</summary>
    public long Flushes => Interlocked.Read(ref _flushes);

    /// <summary>Frames <see cref="SendNow{T}"/> wrote whole on the caller's thread (the rest went through the writer task).</summary>
    public long FramesSentNow => Interlocked.Read(ref _sentNow);

    /// <summary>
    /// Connects to <paramref name="endpoint"/>, exchanges Hellos and starts delivering messages to
    /// <paramref name="handler"/>. Throws <see cref="TransportException"/> (refused, timed out,
    /// authentication failed, ...) with a readable message when it cannot.
    /// </summary>
    public static async ValueTask<FrameConnection> ConnectAsync(ITransport transport, NodeAddress endpoint, FrameConnectionOptions options, FrameHandler handler, CancellationToken cancellationToken)
    {
        var connection = await ConnectWithoutReadingAsync(transport, endpoint, options, handler, cancellationToken).ConfigureAwait(false);
        connection.StartReading();
        return connection;
    }

    /// <summary>As <see cref="ConnectAsync"/>, but messages flow only after <see cref="StartReading"/>.</summary>
    internal static async ValueTask<FrameConnection> ConnectWithoutReadingAsync(ITransport transport, NodeAddress endpoint, FrameConnectionOptions options, FrameHandler handler, CancellationToken cancellationToken)
    {
        options.Validate();
        var raw = await transport.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
        var connection = new FrameConnection(raw, options, handler);
        await connection.HandshakeAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    /// <summary>
    /// The accepting side: exchanges Hellos over <paramref name="raw"/>; reading starts with
    /// <see cref="StartReading"/>, once the owner has registered the connection.
    /// </summary>
    internal static async ValueTask<FrameConnection> AcceptAsync(ITransportConnection raw, FrameConnectionOptions options, FrameHandler handler, CancellationToken cancellationToken)
    {
        var connection = new FrameConnection(raw, options, handler);
        await connection.HandshakeAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    /// <summary>
    /// Queues <paramref name="message"/> for the peer and returns at once. False when the connection is
    /// closing or closed (the message is dropped: the protocol above resends). If the peer has stopped
    /// reading and the queue would pass <see cref="FrameConnectionOptions.MaxPendingSendBytes"/>, the
    /// connection is closed (logged) and this returns false. Thread-safe.
    /// </summary>
    /// <exception cref="ArgumentException">The frame is over <see cref="FrameConnectionOptions.MaxFrameSize"/>: a bug in the sender's batching.</exception>
    public bool Send<T>(in T message)
        where T : IMessage
    {
        var bodySize = message.Size;
        long wouldBe;
        lock (_sendLock)
        {
            if (_closing)
            {
                return false;
            }

            var frameSize = FrameSize(bodySize, _sendAuth is not null);
            if (frameSize - 4 > _options.MaxFrameSize)
            {
                throw new ArgumentException($"A {message.Type} of {bodySize} bytes does not fit in a frame of at most {_options.MaxFrameSize} bytes; send it in smaller parts.", nameof(message));
            }

            wouldBe = _pendingBytes + frameSize;
            if (wouldBe <= _options.MaxPendingSendBytes)
            {
                EnqueueLocked(message, bodySize, sign: _sendAuth is not null);
                if (_writerSignaled)
                {
                    return true;
                }

                _writerSignaled = true;
            }
        }

        if (wouldBe > _options.MaxPendingSendBytes)
        {
            LogMessages.SendQueueFull(_logger, Id, this, wouldBe, _options.MaxPendingSendBytes);
            BeginClose(new ConnectionClosed(TransportError.SendQueueFull, $"{wouldBe} bytes waiting to be sent would pass the limit of {_options.MaxPendingSendBytes}: the peer stopped reading"), graceful: false);
            return false;
        }

        _wake.Writer.TryWrite(true);
        return true;
    }

    /// <summary>
    /// As <see cref="Send{T}"/>, but when nothing is queued or being written it writes the frame on the caller's
    /// thread with one non-blocking system call, saving the hand-off to the writer task. Whatever the socket does
    /// not take at once (a full send buffer, a transport without non-blocking sends) goes to the writer as usual,
    /// ahead of any later frame, so frame order is kept. For small replies and requests that one round trip waits
    /// for; a stream of frames (replication) keeps using <see cref="Send{T}"/>, where the writer overlaps the caller.
    /// </summary>
    public bool SendNow<T>(in T message)
        where T : IMessage
    {
        if (_transport is not IImmediateSend socket)
        {
            return Send(message);
        }

        var bodySize = message.Size;
        lock (_sendLock)
        {
            var idle = !_closing && !_writerSignaled && !_writing && _pendingBytes == 0;
            if (idle && FrameSize(bodySize, _sendAuth is not null) - 4 <= _options.MaxFrameSize)
            {
                _nowBuffer.ResetWrittenCount();
                var total = EncodeLocked(_nowBuffer, message, bodySize, sign: _sendAuth is not null);
                var frame = _nowBuffer.WrittenSpan;
                var sent = socket.TrySendNow(frame);
                if (sent == total)
                {
                    _sentNow++;
                    return true;
                }

                // The rest goes first in the writer's queue (it is empty), so nothing sent after it can overtake it.
                var rest = frame[sent..];
                rest.CopyTo(_pending.GetSpan(rest.Length));
                _pending.Advance(rest.Length);
                _pendingBytes += rest.Length;
                _writerSignaled = true;
                _wake.Writer.TryWrite(true);
                return true;
            }
        }

        // Busy, closing or too big: the usual path decides (and says why when it refuses).
        return Send(message);
    }

    /// <summary>
    /// Starts closing: what is queued is still sent (for up to <see cref="FrameConnectionOptions.CloseTimeout"/>),
    /// then the connection ends and <see cref="Closed"/> completes. Does not wait; safe inside the handler.
    /// </summary>
    public void Close() => BeginClose(new ConnectionClosed(TransportError.LocalClose, "closed by this side"));

    /// <summary>Closes (as <see cref="Close"/>) and waits until the connection has ended.</summary>
    public async ValueTask DisposeAsync()
    {
        Close();
        await _closed.Task.ConfigureAwait(false);
    }

    /// <summary>Who is at the other end, for log lines.</summary>
    public override string ToString() => Describe();

    internal void StartReading()
    {
        lock (_sendLock)
        {
            if (!_closing)
            {
                // On the thread pool, so the handler never runs on the thread that accepted or connected.
                _reader = Task.Run(ReadLoopAsync);
            }
        }
    }

    private static int FrameSize(int bodySize, bool signed) =>
        MessageCodec.HeaderSize + bodySize + (signed ? FrameAuthenticator.TrailerSize : 0);

    private static ulong RandomNonce()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    private string Describe()
    {
        if (!_handshakeDone)
        {
            return RemoteEndPoint;
        }

        var role = _peerHello.Role.ToString().ToLowerInvariant();
        return _peerHello.From.IsNone ? $"{role} at {RemoteEndPoint}" : $"{role} {_peerHello.From} at {RemoteEndPoint}";
    }

    private void EnqueueLocked<T>(in T message, int bodySize, bool sign)
        where T : IMessage => _pendingBytes += EncodeLocked(_pending, message, bodySize, sign);

    /// <summary>Encodes (and signs, in send order) one frame into <paramref name="into"/>; returns its size.</summary>
    private int EncodeLocked<T>(IBufferWriter<byte> into, in T message, int bodySize, bool sign)
        where T : IMessage
    {
        var total = FrameSize(bodySize, sign);

        // Room for the whole frame in one chunk; the codec's own GetSpan below then starts at the same place,
        // so the length can be patched and the frame signed in place.
        var frame = into.GetSpan(total);
        var written = MessageCodec.Write(into, message);
        if (sign)
        {
            // The trailer sits inside the frame's length, so a peer without the key still frames correctly.
            BinaryPrimitives.WriteInt32LittleEndian(frame, total - 4);
            _sendAuth!.Sign(frame[..written], frame.Slice(written, FrameAuthenticator.TrailerSize));
            into.Advance(FrameAuthenticator.TrailerSize);
        }

        _framesSent++;
        return total;
    }

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

    private async Task WriteLoopAsync()
    {
        var token = _abort.Token;
        var spare = new SendBuffer();
        Exception? failure = null;
        try
        {
            while (await _wake.Reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                while (_wake.Reader.TryRead(out _))
                {
                }

                SendBuffer batch;
                bool closing;
                lock (_sendLock)
                {
                    batch = _pending;
                    _pending = spare;
                    _writerSignaled = false;
                    _writing = batch.Length > 0;
                    closing = _closing;
                }

                var bytes = batch.Length;
                FlushResult flush = default;
                try
                {
                    if (bytes > 0)
                    {
                        flush = await batch.WriteToAsync(_output, token).ConfigureAwait(false);
                    }
                }
                finally
                {
                    batch.Reset();
                    spare = batch;
                }

                Interlocked.Increment(ref _flushes);
                lock (_sendLock)
                {
                    _pendingBytes -= bytes;
                    _writing = false;
                }

                if (closing)
                {
                    // Everything queued before the close began was in this batch: the stream ends after it.
                    return;
                }

                if (flush.IsCompleted || flush.IsCanceled)
                {
                    failure = new InvalidOperationException("the peer stopped receiving");
                    BeginClose(new ConnectionClosed(TransportError.PeerClosed, "the peer stopped receiving"), graceful: false);
                    return;
                }
            }
        }
        catch (OperationCanceledException e) when (token.IsCancellationRequested)
        {
            // Closing: the closer cut the write short.
            failure = e;
        }
        catch (Exception e)
        {
            failure = e;
            BeginClose(new ConnectionClosed(TransportError.Reset, $"sending failed: {e.Message}"), graceful: false);
        }
        finally
        {
            spare.Reset();

            // The writer owns the output: ending it cleanly sends the end of the stream; with a failure nothing
            // more is written (a stuck peer must not stall the close).
            await Quietly(_output.CompleteAsync(failure).AsTask()).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Starts closing once (the first reason wins). Graceful: queued frames, and <paramref name="error"/> last,
    /// are sent first. Linger: what the peer still sends is read and dropped until it closes, so that closing
    /// with unread input does not reset the connection and destroy the error frame before the peer reads it.
    /// </summary>
    private void BeginClose(ConnectionClosed info, ProtocolError? error = null, bool graceful = true, bool linger = false)
    {
        lock (_sendLock)
        {
            if (_closing)
            {
                return;
            }

            if (error is { } e)
            {
                EnqueueLocked(e, e.Size, sign: false);
            }

            _closing = true;
            _closeInfo = info;
            _writerSignaled = true;
        }

        _closingStarted.TrySetResult(info);

        _wake.Writer.TryWrite(true);
        _ = CloseAsync(graceful, linger);
    }

    private async Task CloseAsync(bool graceful, bool linger)
    {
        // Never close inline on the caller's thread: that may be the read loop, the writer or the owner's loop.
        await Task.Yield();
        if (graceful)
        {
            await Quietly(_writer.WaitAsync(_options.CloseTimeout)).ConfigureAwait(false);
            if (linger)
            {
                await LingerAsync().ConfigureAwait(false);
            }
        }

        // Stop both loops before the transport goes, so no read or write is still using a buffer when the
        // pipes are completed. Bounded: a handler that ignores cancellation must not keep the close from finishing.
        await _abort.CancelAsync().ConfigureAwait(false);
        await Quietly(_writer.WaitAsync(_options.CloseTimeout)).ConfigureAwait(false);
        await Quietly(_reader.WaitAsync(_options.CloseTimeout)).ConfigureAwait(false);
        await Quietly(_transport.DisposeAsync().AsTask()).ConfigureAwait(false);
        await Quietly(_writer).ConfigureAwait(false);
        if (_reader.IsCompleted)
        {
            await Quietly(_input.CompleteAsync().AsTask()).ConfigureAwait(false);
            _receiveAuth?.Dispose();
        }

        lock (_sendLock)
        {
            _pending.Reset();
            _sendAuth?.Dispose();
        }

        LogMessages.ConnectionClosed(_logger, Id, this, _closeInfo.Reason, _closeInfo.Detail);
        _closingStarted.TrySetResult(_closeInfo);
        _closed.TrySetResult(_closeInfo);
    }

    private async Task LingerAsync()
    {
        await Quietly(_reader).ConfigureAwait(false);
        using var deadline = new CancellationTokenSource(_options.CloseTimeout);
        try
        {
            while (true)
            {
                var result = await _input.ReadAsync(deadline.Token).ConfigureAwait(false);
                _input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (Exception)
        {
            // Timed out or broke: either way the connection is being cut now.
        }
    }

    private static async Task Quietly(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Closing: the outcome is already recorded as the close reason.
        }
    }

    /// <summary>The peer sent a ProtocolError during the handshake.</summary>
    private sealed class PeerRejectedException(ConnectionClosed closed) : Exception(closed.Detail)
    {
        public ConnectionClosed Closed { get; } = closed;
    }

    /// <summary>The input ended during the handshake.</summary>
    private sealed class EndOfInputException(ConnectionClosed closed) : Exception(closed.Detail)
    {
        public ConnectionClosed Closed { get; } = closed;
    }
}

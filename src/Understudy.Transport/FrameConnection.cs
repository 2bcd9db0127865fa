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
/// <para>
/// One state machine over one send queue and its lock, split by concern: sending (<c>FrameConnection.Sending.cs</c>),
/// the handshake, the read loop and closing each have a file; the state they share is declared here.
/// </para>
/// </summary>
public sealed partial class FrameConnection : IAsyncDisposable
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

    // Also guarded by _sendLock: bytes SendHeld encoded at the start of _nowBuffer that FlushHeld (or the next frame
    // sent by any path) has not written yet. Only while the writer is idle and its queue empty, so they are next on
    // the wire: every other path writes them, or queues them, ahead of its own frame.
    private int _heldBytes;
    private long _heldFlushes;

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

    /// <summary>Writes of frames <see cref="SendHeld{T}"/> held, each one system call for all the frames held since the last.</summary>
    public long HeldFlushes => Interlocked.Read(ref _heldFlushes);

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

using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Understudy.Protocol;

namespace Understudy.Transport;

// Sending: Send queues a frame for the writer task; SendNow writes it on the caller's thread when the writer is idle;
// SendHeld keeps it, with any others held, until the caller's FlushHeld writes them all with one system call.
public sealed partial class FrameConnection
{
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

            wouldBe = _pendingBytes + _heldBytes + frameSize;
            if (wouldBe <= _options.MaxPendingSendBytes)
            {
                MoveHeldToPendingLocked();
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
            if (IdleLocked() && FrameSize(bodySize, _sendAuth is not null) - 4 <= _options.MaxFrameSize)
            {
                // Frames held by SendHeld are at the start of the buffer: they go out in the same call, ahead of this one.
                if (_heldBytes == 0)
                {
                    _nowBuffer.ResetWrittenCount();
                }

                EncodeLocked(_nowBuffer, message, bodySize, sign: _sendAuth is not null);
                if (WriteNowBufferLocked(socket))
                {
                    _sentNow++;
                }

                return true;
            }
        }

        // Busy, closing or too big: the usual path decides (and says why when it refuses).
        return Send(message);
    }

    /// <summary>
    /// As <see cref="SendNow{T}"/>, but the frame is not written yet: it waits, after any other frames held on this
    /// connection, until <see cref="FlushHeld"/> writes them all with one system call. For an owner that produces many
    /// small frames in one go (a primary's replies to the clients whose writes one acknowledgement committed) and
    /// flushes at its end. <paramref name="mustFlush"/> is true when this frame is the first held since the last flush:
    /// the caller must then call <see cref="FlushHeld"/> once, soon, on any thread. Held frames never wait behind a
    /// later frame: any other send on the connection, and its close, writes or queues them ahead of its own. When the
    /// writer task is busy the frame is queued for it as by <see cref="Send{T}"/>. Returns false, as
    /// <see cref="Send{T}"/> does, when the frame was dropped (the connection is closing). Thread-safe.
    /// </summary>
    public bool SendHeld<T>(in T message, out bool mustFlush)
        where T : IMessage
    {
        mustFlush = false;
        if (_transport is not IImmediateSend)
        {
            return Send(message);
        }

        var bodySize = message.Size;
        lock (_sendLock)
        {
            var frameSize = FrameSize(bodySize, _sendAuth is not null);
            if (IdleLocked() && frameSize - 4 <= _options.MaxFrameSize && _heldBytes + frameSize <= _options.MaxPendingSendBytes)
            {
                mustFlush = _heldBytes == 0;
                if (mustFlush)
                {
                    _nowBuffer.ResetWrittenCount();
                }

                _heldBytes += EncodeLocked(_nowBuffer, message, bodySize, sign: _sendAuth is not null);
                return true;
            }
        }

        return Send(message);
    }

    /// <summary>Writes the frames <see cref="SendHeld{T}"/> holds, with one non-blocking system call; what the socket does not take goes to the writer task. Thread-safe; nothing to do when none are held.</summary>
    public void FlushHeld()
    {
        // Without the lock, nothing held is the common case (a reader's batch that held nothing). Frames held by this
        // thread are seen here; one another thread is holding now has a first holder of its own, who flushes it.
        if (_transport is not IImmediateSend socket || Volatile.Read(ref _heldBytes) == 0)
        {
            return;
        }

        lock (_sendLock)
        {
            if (_heldBytes == 0)
            {
                return;
            }

            _heldFlushes++;
            WriteNowBufferLocked(socket);
        }
    }

    /// <summary>Nothing queued or being written, and not closing: a frame written now cannot overtake another.</summary>
    private bool IdleLocked() => !_closing && !_writerSignaled && !_writing && _pendingBytes == 0;

    /// <summary>
    /// Writes <see cref="_nowBuffer"/> (held frames and perhaps one more) with one non-blocking call; returns true when
    /// the socket took it all. The rest goes first in the writer's queue (it is empty), so nothing sent after it can
    /// overtake it.
    /// </summary>
    private bool WriteNowBufferLocked(IImmediateSend socket)
    {
        System.Diagnostics.Debug.Assert(_heldBytes == 0 || IdleLocked(), "held frames exist only while the writer is idle");
        _heldBytes = 0;
        var bytes = _nowBuffer.WrittenSpan;
        var sent = socket.TrySendNow(bytes);
        if (sent == bytes.Length)
        {
            return true;
        }

        QueueLocked(bytes[sent..]);
        _writerSignaled = true;
        _wake.Writer.TryWrite(true);
        return false;
    }

    /// <summary>Puts held frames at the front of the writer's queue (it is empty while any are held), before a frame queued behind them.</summary>
    private void MoveHeldToPendingLocked()
    {
        if (_heldBytes == 0)
        {
            return;
        }

        QueueLocked(_nowBuffer.WrittenSpan);
        _heldBytes = 0;
    }

    /// <summary>Copies encoded bytes to the end of the writer's queue (empty, in both callers: they go first).</summary>
    private void QueueLocked(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(_pending.GetSpan(bytes.Length));
        _pending.Advance(bytes.Length);
        _pendingBytes += bytes.Length;
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
}

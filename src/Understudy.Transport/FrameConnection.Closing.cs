using Understudy.Protocol;

namespace Understudy.Transport;

// Closing: what is queued is still sent, then the connection ends with its reason.
public sealed partial class FrameConnection
{
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

            // Held frames were encoded (and signed) first, so they go out first, and the error last.
            MoveHeldToPendingLocked();
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
}

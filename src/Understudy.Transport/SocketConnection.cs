using System.IO.Pipelines;
using System.Net.Sockets;

namespace Understudy.Transport;

/// <summary>
/// A TCP socket as a duplex pipe, both directions over the socket's stream with no task of its own.
/// Input reads from the socket only when asked: the frame reader asks for at most one frame (under the
/// size limit) at a time, so a peer cannot make this side buffer more. Output writes straight from the
/// caller's buffers when its <c>WriteAsync</c> is used, and completing it sends FIN after the data.
/// (Measured against pumps that move bytes between the socket and a <see cref="Pipe"/> on their own
/// tasks: on a 2-core machine the extra thread hop per batch cost more than it overlapped.)
/// </summary>
internal sealed class SocketConnection : ITransportConnection, IImmediateSend
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private int _disposed;

    public SocketConnection(Socket socket)
    {
        _socket = socket;
        RemoteEndPoint = socket.RemoteEndPoint?.ToString() ?? "unknown";
        _stream = new NetworkStream(socket, ownsSocket: false);
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024, leaveOpen: true));
        Output = new ShutdownOnCompleteWriter(PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true)), socket);

        // After the stream is made (it refuses a non-blocking socket): a synchronous send must never block the caller,
        // which may be a node's loop. The stream's asynchronous reads and writes do not depend on this setting.
        socket.Blocking = false;
    }

    public int TrySendNow(ReadOnlySpan<byte> bytes)
    {
        try
        {
            var sent = _socket.Send(bytes, SocketFlags.None, out var error);
            return error == SocketError.Success ? sent : 0;
        }
        catch (ObjectDisposedException)
        {
            // Closing: the writer task finds the socket gone and the close takes its course.
            return 0;
        }
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public string RemoteEndPoint { get; }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            // Closing the socket ends any read or write still pending; the pipes belong to their users.
            _socket.Dispose();
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Completing without an error half-closes the socket, so the peer reads everything and then the end.</summary>
    private sealed class ShutdownOnCompleteWriter(PipeWriter inner, Socket socket) : PipeWriter
    {
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) => inner.WriteAsync(source, cancellationToken);

        public override void Complete(Exception? exception = null)
        {
            inner.Complete(exception);
            ShutdownSend(exception);
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            await inner.CompleteAsync(exception).ConfigureAwait(false);
            ShutdownSend(exception);
        }

        private void ShutdownSend(Exception? exception)
        {
            if (exception is not null)
            {
                return;
            }

            try
            {
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Already closed or reset: the peer learns that some other way.
            }
        }
    }
}

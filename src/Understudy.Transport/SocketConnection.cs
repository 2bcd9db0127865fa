using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Understudy.Transport;

/// <summary>
/// A TCP socket as a duplex pipe. Input is a stream pipe reader, which reads from the socket only when
/// asked: the frame reader asks for at most one frame (under the size limit) at a time, so a peer cannot
/// make this side buffer more. Output is a pipe drained by one send task with gathered writes (one system
/// call per flushed batch, however many pipe segments it spans); completing it sends FIN after the data.
/// </summary>
internal sealed class SocketConnection : ITransportConnection
{
    /// <summary>Flushes wait while this much is unsent: backpressure reaches the frame writer and its queue limit.</summary>
    private const int OutputPauseBytes = 1024 * 1024;

    /// <summary>How long disposing waits for queued output to reach the socket before cutting it.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(1);

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly Pipe _outbound;
    private readonly Task _sending;
    private readonly List<ArraySegment<byte>> _segments = [];
    private int _disposed;

    public SocketConnection(Socket socket)
    {
        _socket = socket;
        RemoteEndPoint = socket.RemoteEndPoint?.ToString() ?? "unknown";
        _stream = new NetworkStream(socket, ownsSocket: false);
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 16 * 1024, minimumReadSize: 4 * 1024, leaveOpen: true));
        _outbound = new Pipe(new PipeOptions(pauseWriterThreshold: OutputPauseBytes, resumeWriterThreshold: OutputPauseBytes / 2, useSynchronizationContext: false));
        _sending = Task.Run(SendLoopAsync);
    }

    public PipeReader Input { get; }

    public PipeWriter Output => _outbound.Writer;

    public string RemoteEndPoint { get; }

    private async Task SendLoopAsync()
    {
        var reader = _outbound.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync();
                var buffer = result.Buffer;
                try
                {
                    if (buffer.IsSingleSegment)
                    {
                        if (!buffer.IsEmpty)
                        {
                            await _socket.SendAsync(buffer.First, SocketFlags.None);
                        }
                    }
                    else
                    {
                        _segments.Clear();
                        foreach (var memory in buffer)
                        {
                            // The pipe's pool hands out arrays; the fallback copies only if that ever changes.
                            _segments.Add(MemoryMarshal.TryGetArray(memory, out var segment) ? segment : new ArraySegment<byte>(memory.ToArray()));
                        }

                        await _socket.SendAsync(_segments, SocketFlags.None);
                    }
                }
                finally
                {
                    reader.AdvanceTo(buffer.End);
                }

                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            _segments.Clear();
            await reader.CompleteAsync(error);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await Output.CompleteAsync();
        try
        {
            await _sending.WaitAsync(DrainTimeout);
        }
        catch (TimeoutException)
        {
            // The peer is not reading: cut the connection below.
        }

        await Input.CompleteAsync();
        _socket.Dispose();
        await _stream.DisposeAsync();
        try
        {
            await _sending;
        }
        catch (Exception)
        {
            // The send loop records its own failure in the pipe; nothing to add here.
        }
    }
}

using System.Net;
using System.Net.Sockets;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// TCP connections with TCP_NODELAY (frames are batched above, so Nagle would only add latency).
/// Reads go through a <see cref="System.IO.Pipelines.PipeReader"/> over the socket's stream, which reads
/// only when the frame reader asks for more; writes go through a pipe that one task drains into the
/// socket with gathered sends.
/// </summary>
public sealed class TcpTransport : ITransport
{
    /// <summary>What to do about a port in use, when the host does not name its own flag.</summary>
    public const string DefaultAddressInUseHint =
        "stop the process that holds it, or choose another port (every port can be set on the command line, in the environment or in the settings file)";

    private readonly string _addressInUseHint;

    /// <summary>A TCP transport whose port-in-use message gives <see cref="DefaultAddressInUseHint"/>.</summary>
    public TcpTransport()
        : this(null)
    {
    }

    /// <param name="addressInUseHint">
    /// Ends the message when a port is taken; a host names its own flag and variable here,
    /// for example "stop it, or pass --port (or set UNDERSTUDY_PORT) to use another port".
    /// </param>
    public TcpTransport(string? addressInUseHint) => _addressInUseHint = addressInUseHint ?? DefaultAddressInUseHint;

    /// <inheritdoc />
    public async ValueTask<IConnectionListener> ListenAsync(NodeAddress endpoint, CancellationToken cancellationToken)
    {
        var ip = (await Endpoints.ResolveAsync(endpoint, cancellationToken))[0];
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                // Lets a restarted server rebind its port while old connections sit in TIME_WAIT. On Unix this
                // never lets two listeners share a port (on Windows it would, so it is left off there).
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            }

            socket.Bind(new IPEndPoint(ip, endpoint.Port));
            socket.Listen(512);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new TransportException(TransportError.AddressInUse, $"Cannot listen on {endpoint}: port {endpoint.Port} is already in use by another process; {_addressInUseHint}.", e);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new TransportException(TransportError.Unreachable, $"Cannot listen on {endpoint}: {e.Message}.", e);
        }

        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        return new TcpConnectionListener(socket, endpoint with { Port = port });
    }

    /// <inheritdoc />
    public async ValueTask<ITransportConnection> ConnectAsync(NodeAddress endpoint, CancellationToken cancellationToken)
    {
        var addresses = await Endpoints.ResolveAsync(endpoint, cancellationToken);
        TransportException? failure = null;
        foreach (var ip in addresses)
        {
            var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(ip, endpoint.Port), cancellationToken);
                return new SocketConnection(socket);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                failure = Endpoints.ConnectFailed(endpoint, e);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        throw failure!;
    }

    private sealed class TcpConnectionListener(Socket socket, NodeAddress localAddress) : IConnectionListener
    {
        private int _disposed;

        public NodeAddress LocalAddress { get; } = localAddress;

        public async ValueTask<ITransportConnection?> AcceptAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                Socket accepted;
                try
                {
                    accepted = await socket.AcceptAsync(cancellationToken);
                }
                catch (ObjectDisposedException)
                {
                    return null;
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted || Volatile.Read(ref _disposed) != 0)
                {
                    return null;
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
                {
                    // The client gave up between the kernel's accept and ours: nothing to serve.
                    continue;
                }

                accepted.NoDelay = true;
                return new SocketConnection(accepted);
            }
        }

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                socket.Dispose();
            }

            return ValueTask.CompletedTask;
        }
    }
}

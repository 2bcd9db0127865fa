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

    // SOL_SOCKET and SO_REUSEADDR, which differ between Linux and the BSDs (macOS).
    private const int SolSocketLinux = 1;
    private const int SoReuseAddrLinux = 2;
    private const int SolSocketBsd = 0xffff;
    private const int SoReuseAddrBsd = 0x4;

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
        var ip = (await Endpoints.ResolveAsync(endpoint, cancellationToken).ConfigureAwait(false))[0];
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            AllowRebindDuringTimeWait(socket);

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
        var addresses = await Endpoints.ResolveAsync(endpoint, cancellationToken).ConfigureAwait(false);
        TransportException? failure = null;
        foreach (var ip in addresses)
        {
            var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(ip, endpoint.Port), cancellationToken).ConfigureAwait(false);
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

    /// <summary>
    /// Sets SO_REUSEADDR alone, so a restarted server can rebind its port while connections of the killed
    /// process sit in TIME_WAIT (otherwise it would wait a minute). On Unix that never lets two live
    /// listeners share a port. It is set raw because .NET's ReuseAddress option also sets SO_REUSEPORT on
    /// Linux, which would let a second server bind the same port silently; on Windows SO_REUSEADDR itself
    /// allows port stealing, so nothing is set there.
    /// </summary>
    private static void AllowRebindDuringTimeWait(Socket socket)
    {
        if (OperatingSystem.IsLinux())
        {
            socket.SetRawSocketOption(SolSocketLinux, SoReuseAddrLinux, BitConverter.GetBytes(1));
        }
        else if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
        {
            socket.SetRawSocketOption(SolSocketBsd, SoReuseAddrBsd, BitConverter.GetBytes(1));
        }
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
                    accepted = await socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
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

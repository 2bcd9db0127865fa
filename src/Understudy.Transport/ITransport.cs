using System.IO.Pipelines;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// Opens byte connections between processes (<see cref="TcpTransport"/>) or inside one process
/// (<see cref="InMemoryTransport"/>). Both behave alike: connecting where nothing listens throws
/// <see cref="TransportException"/> with <see cref="TransportError.Refused"/>, and closing one side is
/// seen by the other as the end of its input.
/// </summary>
public interface ITransport
{
    /// <summary>
    /// Starts listening on <paramref name="endpoint"/>; port 0 asks for a free port (read it back from
    /// <see cref="IConnectionListener.LocalAddress"/>). Throws <see cref="TransportException"/> with
    /// <see cref="TransportError.AddressInUse"/> when the port is taken.
    /// </summary>
    ValueTask<IConnectionListener> ListenAsync(NodeAddress endpoint, CancellationToken cancellationToken);

    /// <summary>Connects to <paramref name="endpoint"/>; throws <see cref="TransportException"/> when it cannot.</summary>
    ValueTask<ITransportConnection> ConnectAsync(NodeAddress endpoint, CancellationToken cancellationToken);
}

/// <summary>Accepts connections on one address until disposed.</summary>
public interface IConnectionListener : IAsyncDisposable
{
    /// <summary>The address listened on, with the port the OS chose when port 0 was asked for.</summary>
    NodeAddress LocalAddress { get; }

    /// <summary>The next incoming connection, or null once the listener is disposed.</summary>
    ValueTask<ITransportConnection?> AcceptAsync(CancellationToken cancellationToken);
}

/// <summary>
/// One byte connection as a pair of pipes. Completing <see cref="IDuplexPipe.Output"/> without an error
/// sends the end of the stream (the peer's input completes after reading what came before); a broken
/// connection surfaces as an exception from reading <see cref="IDuplexPipe.Input"/>. Disposing cuts the
/// connection at once, ending any read or write in progress. The pipes belong to their users, who
/// complete them (after their last read or write) to give their buffers back.
/// </summary>
public interface ITransportConnection : IDuplexPipe, IAsyncDisposable
{
    /// <summary>The other end, for log lines (for TCP its IP and port).</summary>
    string RemoteEndPoint { get; }
}

/// <summary>
/// A connection that can write on the caller's thread without ever blocking it: <see cref="TrySendNow"/> takes what
/// the operating system accepts at once and returns how many bytes that was (0 when it would block or failed; the
/// caller then leaves the rest to its usual asynchronous write, which reports any failure). Never called while an
/// asynchronous write is in flight.
/// </summary>
internal interface IImmediateSend
{
    int TrySendNow(ReadOnlySpan<byte> bytes);
}

using System.Net.Sockets;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>What a probe of a port found.</summary>
public enum PortProbeResult
{
    /// <summary>The port refused: nothing listens there, so the process that did is gone.</summary>
    Refused,

    /// <summary>Something accepted (possibly a paused process: the kernel still accepts for it).</summary>
    Accepted,

    /// <summary>No answer in time, or the host is unreachable: proves nothing.</summary>
    TimedOut,
}

/// <summary>
/// A plain TCP connect to a port, closed at once. The monitor takes "its connection dropped and its port
/// refuses" as proof that a server is dead, without waiting for a heartbeat timeout.
/// </summary>
public static class PortProbe
{
    /// <summary>
    /// Connects to <paramref name="address"/> within <paramref name="timeout"/>. Only a refusal from every
    /// address the host resolves to counts as <see cref="PortProbeResult.Refused"/>; anything unclear is
    /// <see cref="PortProbeResult.TimedOut"/>, never mistaken for death.
    /// </summary>
    public static async ValueTask<PortProbeResult> ProbeAsync(NodeAddress address, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        System.Net.IPAddress[] addresses;
        try
        {
            addresses = await Endpoints.ResolveAsync(address, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return PortProbeResult.TimedOut;
        }
        catch (TransportException)
        {
            return PortProbeResult.TimedOut;
        }

        var refused = 0;
        foreach (var ip in addresses)
        {
            using var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(new System.Net.IPEndPoint(ip, address.Port), deadline.Token).ConfigureAwait(false);
                return PortProbeResult.Accepted;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                refused++;
            }
            catch (SocketException)
            {
                // Unreachable and the like: no proof either way.
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return PortProbeResult.TimedOut;
            }
        }

        return refused == addresses.Length ? PortProbeResult.Refused : PortProbeResult.TimedOut;
    }
}

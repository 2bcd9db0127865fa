using System.Net;
using System.Net.Sockets;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>Turns a <see cref="NodeAddress"/> host into IP addresses, IPv4 first.</summary>
internal static class Endpoints
{
    /// <summary>
    /// Resolves <paramref name="address"/>. "localhost" is 127.0.0.1 without asking DNS (so a listener and
    /// its clients agree on one family), and an empty host or "*" means every interface.
    /// </summary>
    public static async ValueTask<IPAddress[]> ResolveAsync(NodeAddress address, CancellationToken cancellationToken)
    {
        var host = address.Host;
        if (string.IsNullOrEmpty(host) || host == "*")
        {
            return [IPAddress.Any];
        }

        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            return [IPAddress.Loopback];
        }

        if (IPAddress.TryParse(host, out var ip))
        {
            return [ip];
        }

        IPAddress[] found;
        try
        {
            found = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new TransportException(TransportError.Unreachable, $"Cannot resolve the host of {address}: {e.Message}.", e);
        }

        if (found.Length == 0)
        {
            throw new TransportException(TransportError.Unreachable, $"Cannot resolve the host of {address}: no addresses.");
        }

        return [.. found.OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1)];
    }

    /// <summary>The <see cref="TransportError"/> for a failed connect.</summary>
    public static TransportException ConnectFailed(NodeAddress address, SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => new TransportException(TransportError.Refused, $"Connection to {address} refused: nothing listens there.", e),
        SocketError.TimedOut => new TransportException(TransportError.TimedOut, $"Connection to {address} timed out.", e),
        SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostNotFound or SocketError.HostDown or SocketError.AddressNotAvailable
            => new TransportException(TransportError.Unreachable, $"Cannot reach {address}: {e.Message}.", e),
        _ => new TransportException(TransportError.Reset, $"Connection to {address} failed: {e.Message}.", e),
    };
}

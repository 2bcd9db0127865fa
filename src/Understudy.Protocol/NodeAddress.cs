using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Understudy.Protocol;

/// <summary>
/// Where a cluster member listens: a host and a port. It is also the member's identity,
/// as in the original project where a server was known by its port.
/// </summary>
public readonly record struct NodeAddress(string Host, int Port) : IComparable<NodeAddress>
{
    /// <summary>No address: used where a message names no member (no primary known, say).</summary>
    public static readonly NodeAddress None = new(string.Empty, 0);

    /// <summary>True when this is <see cref="None"/>.</summary>
    public bool IsNone => Port == 0 && string.IsNullOrEmpty(Host);

    /// <inheritdoc />
    public override string ToString() => IsNone ? "-" : Host + ":" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>Orders by host, then port, so sets of members print and sort the same everywhere.</summary>
    public int CompareTo(NodeAddress other)
    {
        var c = string.CompareOrdinal(Host ?? string.Empty, other.Host ?? string.Empty);
        return c != 0 ? c : Port.CompareTo(other.Port);
    }

    public static bool operator <(NodeAddress left, NodeAddress right) => left.CompareTo(right) < 0;

    public static bool operator <=(NodeAddress left, NodeAddress right) => left.CompareTo(right) <= 0;

    public static bool operator >(NodeAddress left, NodeAddress right) => left.CompareTo(right) > 0;

    public static bool operator >=(NodeAddress left, NodeAddress right) => left.CompareTo(right) >= 0;

    /// <summary>Parses <c>host:port</c> (or <c>[v6]:port</c>).</summary>
    public static NodeAddress Parse(string text)
    {
        if (TryParse(text, out var address))
        {
            return address;
        }

        throw new FormatException($"'{text}' is not an address: expected host:port, for example 127.0.0.1:8090.");
    }

    /// <summary>Parses <c>host:port</c>; false when the text is not of that form.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out NodeAddress address)
    {
        address = None;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            return false;
        }

        var host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is <= 0 or > 65535)
        {
            return false;
        }

        address = new NodeAddress(host, port);
        return true;
    }
}

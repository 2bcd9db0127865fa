using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.Hosting;

/// <summary>What a server or monitor process says about itself on every connection it accepts or makes.</summary>
internal static class HostIdentity
{
    /// <summary>A fresh incarnation for a process start: random, and odd so that it is never zero.</summary>
    public static ulong NewIncarnation() => BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)) | 1;

    /// <summary>A host's connection options: its role, address and incarnation, the cluster key, and clients and operators admitted without it.</summary>
    public static FrameConnectionOptions ConnectionOptions(PeerRole role, NodeAddress local, ulong incarnation, ReadOnlyMemory<byte> clusterKey, ILoggerFactory loggers) => new()
    {
        Role = role,
        LocalAddress = local,
        Incarnation = incarnation,
        ClusterKey = clusterKey,
        UnauthenticatedRoles = [PeerRole.Client, PeerRole.Admin],
        Logger = loggers.CreateLogger("Understudy.Transport"),
    };
}

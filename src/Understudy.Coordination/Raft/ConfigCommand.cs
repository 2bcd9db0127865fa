using System.Buffers;
using System.Buffers.Binary;
using Understudy.Protocol;

namespace Understudy.Coordination.Raft;

/// <summary>
/// One entry of the monitor group's Raft log: "replace the configuration with <see cref="Next"/> if its version is
/// still <see cref="ExpectedVersion"/>". Encoded as a format byte, the expected version (little-endian int64) and
/// the configuration in <see cref="ClusterConfig"/>'s own wire format.
/// </summary>
internal readonly record struct ConfigCommand(long ExpectedVersion, ClusterConfig Next)
{
    // A leading format byte lets a later release add entry kinds that an older member refuses loudly.
    private const byte CompareAndSetFormat = 1;
    private const byte SnapshotFormat = 1;

    // An entry that changes nothing but must still reach the state machine: DotNext's log hands only entries with a
    // payload to it, so an empty entry cannot carry a requested snapshot (RaftCoordinator's remarks on a refused one).
    private const byte NoOpFormat = 2;

    /// <summary>The payload of an entry that changes nothing.</summary>
    public static ReadOnlyMemory<byte> NoOp { get; } = new[] { NoOpFormat };

    /// <summary>Whether <paramref name="payload"/> is <see cref="NoOp"/>.</summary>
    public static bool IsNoOp(in ReadOnlySequence<byte> payload) => payload.Length == 1 && payload.FirstSpan[0] == NoOpFormat;

    public byte[] ToBytes()
    {
        var config = Next.ToBytes();
        var bytes = new byte[1 + sizeof(long) + config.Length];
        bytes[0] = CompareAndSetFormat;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(1), ExpectedVersion);
        config.CopyTo(bytes.AsSpan(1 + sizeof(long)));
        return bytes;
    }

    /// <exception cref="FormatException">Not an entry this release wrote.</exception>
    public static ConfigCommand Parse(in ReadOnlySequence<byte> payload)
    {
        var bytes = payload.ToArray();
        if (bytes.Length < 1 + sizeof(long) || bytes[0] != CompareAndSetFormat)
        {
            throw new FormatException($"an entry of {bytes.Length} bytes with format byte {(bytes.Length > 0 ? bytes[0] : -1)} is not a compare-and-set");
        }

        var expected = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(1));
        try
        {
            return new ConfigCommand(expected, ClusterConfig.FromBytes(bytes.AsSpan(1 + sizeof(long))));
        }
        catch (ProtocolException e)
        {
            throw new FormatException(e.Message, e);
        }
    }

    /// <summary>A snapshot's content: the format byte and the configuration.</summary>
    public static byte[] SnapshotBytes(ClusterConfig config)
    {
        var body = config.ToBytes();
        var bytes = new byte[1 + body.Length];
        bytes[0] = SnapshotFormat;
        body.CopyTo(bytes.AsSpan(1));
        return bytes;
    }

    /// <exception cref="FormatException">Not a snapshot this release wrote.</exception>
    public static ClusterConfig ParseSnapshot(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 1 || bytes[0] != SnapshotFormat)
        {
            throw new FormatException($"a snapshot of {bytes.Length} bytes is not in format {SnapshotFormat}");
        }

        try
        {
            return ClusterConfig.FromBytes(bytes[1..]);
        }
        catch (ProtocolException e)
        {
            throw new FormatException(e.Message, e);
        }
    }
}

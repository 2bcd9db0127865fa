using System.Buffers.Binary;
using System.Numerics;

namespace Understudy.Storage;

/// <summary>
/// CRC-32C (Castagnoli), the checksum storage systems use for records (iSCSI, ext4, RocksDB, Kafka).
/// </summary>
/// <remarks>
/// Built on <see cref="BitOperations.Crc32C(uint, ulong)"/> rather than System.IO.Hashing: the BCL
/// intrinsic compiles to the SSE4.2 / ARMv8 CRC32 instruction (8 bytes a step), needs no package, and
/// System.IO.Hashing 10.0 offers only the IEEE CRC-32 polynomial, not Castagnoli.
/// </remarks>
internal static class Crc32C
{
    /// <summary>The checksum of <paramref name="data"/> (initial value and final xor all ones, as usual).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(uint.MaxValue, data);

    /// <summary>The checksum of two spans, as if they were one.</summary>
    public static uint Compute(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second) =>
        ~Update(Update(uint.MaxValue, first), second);

    /// <summary>The running value to start an incremental checksum with (<see cref="Update"/>, then <see cref="Finish"/>).</summary>
    public const uint Start = uint.MaxValue;

    /// <summary>The checksum of everything passed to <see cref="Update"/> since <see cref="Start"/>.</summary>
    public static uint Finish(uint crc) => ~crc;

    /// <summary>Adds <paramref name="data"/> to a running checksum (for data read in chunks).</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }
}

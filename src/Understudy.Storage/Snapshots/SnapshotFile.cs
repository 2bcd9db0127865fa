using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace Understudy.Storage.Snapshots;

/// <summary>
/// The layout of a snapshot file. Little-endian:
/// <code>
/// u32 magic "USNP" | u32 version | i64 index | i64 epoch | i64 bodyLength | u32 crc32c(body) | u32 crc32c(the 36 bytes before) | body
/// </code>
/// The header has its own checksum so a damaged length is caught before anything trusts it; the body's
/// checksum is checked once the whole file is there. The file name is the index, zero-padded, so names sort.
/// </summary>
internal static class SnapshotFile
{
    public const int HeaderSize = 40;
    // 2: the state inside carries log time (client sessions' last write time, expired sessions).
    public const int Version = 2;
    public const string Extension = ".snapshot";
    public const string TempSuffix = ".tmp";
    public const string PartialSuffix = ".partial";

    /// <summary>"USNP" read as a little-endian u32.</summary>
    private const uint Magic = 0x504E5355;

    private const int NameDigits = 20;

    public static string FileNameFor(long index) =>
        index.ToString("D" + NameDigits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) + Extension;

    public static bool TryParseName(string fileName, out long index)
    {
        index = 0;
        return fileName.Length == NameDigits + Extension.Length
            && fileName.EndsWith(Extension, StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(0, NameDigits), NumberStyles.None, CultureInfo.InvariantCulture, out index)
            && index > 0;
    }

    public static void WriteHeader(Span<byte> header, long index, long epoch, long bodyLength, uint bodyCrc)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], Version);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], index);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], epoch);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], bodyLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[32..], bodyCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(header[36..], Crc32C.Compute(header[..36]));
    }

    /// <summary>Checks a header against the file it heads; null when it is sound, else what is wrong.</summary>
    public static string? CheckHeader(ReadOnlySpan<byte> header, long fileLength, out SnapshotHeader parsed)
    {
        parsed = default;
        if (header.Length < HeaderSize)
        {
            return $"the file is {fileLength} bytes, shorter than the {HeaderSize}-byte header (a torn write)";
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic)
        {
            return "it does not start with the snapshot magic number (not a snapshot file)";
        }

        var storedHeaderCrc = BinaryPrimitives.ReadUInt32LittleEndian(header[36..]);
        var headerCrc = Crc32C.Compute(header[..36]);
        if (storedHeaderCrc != headerCrc)
        {
            return $"header checksum mismatch (stored {storedHeaderCrc:x8}, computed {headerCrc:x8})";
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        if (version != Version)
        {
            return $"format version {version}, this build reads version {Version} (written by another version of Understudy?)";
        }

        parsed = new SnapshotHeader(
            BinaryPrimitives.ReadInt64LittleEndian(header[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(header[16..]),
            BinaryPrimitives.ReadInt64LittleEndian(header[24..]),
            BinaryPrimitives.ReadUInt32LittleEndian(header[32..]));
        if (parsed.BodyLength < 0 || HeaderSize + parsed.BodyLength != fileLength)
        {
            return $"the header promises {parsed.BodyLength} bytes of state but the file holds {fileLength - HeaderSize} (a torn write)";
        }

        return null;
    }

    /// <summary>The CRC-32C of the body of an open snapshot file, read in chunks.</summary>
    public static uint BodyChecksum(SafeFileHandle handle, long bodyLength)
    {
        var buffer = new byte[(int)Math.Min(1024 * 1024, Math.Max(bodyLength, 1))];
        var crc = Crc32C.Start;
        long at = 0;
        while (at < bodyLength)
        {
            var n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, bodyLength - at)), HeaderSize + at);
            if (n == 0)
            {
                throw new EndOfStreamException("the snapshot file ended early");
            }

            crc = Crc32C.Update(crc, buffer.AsSpan(0, n));
            at += n;
        }

        return Crc32C.Finish(crc);
    }

    /// <summary>Reads up to <paramref name="buffer"/>'s length from <paramref name="offset"/>, looping over short reads.</summary>
    public static int ReadFully(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer[read..], offset + read);
            if (n == 0)
            {
                break;
            }

            read += n;
        }

        return read;
    }
}

/// <summary>A parsed snapshot header.</summary>
internal readonly record struct SnapshotHeader(long Index, long Epoch, long BodyLength, uint BodyCrc);

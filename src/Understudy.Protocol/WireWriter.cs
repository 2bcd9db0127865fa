using System.Buffers.Binary;
using System.Text;

namespace Understudy.Protocol;

/// <summary>
/// Writes little-endian fields into a span sized beforehand by the message's <c>Size</c>.
/// Writing past the end is a bug in a <c>Size</c> computation and throws.
/// </summary>
public ref struct WireWriter
{
    private readonly Span<byte> _buffer;
    private int _position;

    public WireWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    /// <summary>Bytes written so far.</summary>
    public readonly int Position => _position;

    public void WriteByte(byte value) => _buffer[_position++] = value;

    public void WriteBool(bool value) => _buffer[_position++] = value ? (byte)1 : (byte)0;

    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_buffer[_position..], value);
        _position += 4;
    }

    public void WriteUInt16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_buffer[_position..], value);
        _position += 2;
    }

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(_buffer[_position..], value);
        _position += 8;
    }

    public void WriteUInt64(ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(_buffer[_position..], value);
        _position += 8;
    }

    /// <summary>A string: 2-byte length, then UTF-8.</summary>
    public void WriteString(string? value)
    {
        value ??= string.Empty;
        var count = Encoding.UTF8.GetBytes(value, _buffer[(_position + 2)..]);
        if (count > ushort.MaxValue)
        {
            throw new ProtocolException($"string of {count} bytes is longer than the protocol allows ({ushort.MaxValue})");
        }

        BinaryPrimitives.WriteUInt16LittleEndian(_buffer[_position..], (ushort)count);
        _position += 2 + count;
    }

    /// <summary>A byte string: 4-byte length, then the bytes.</summary>
    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        WriteInt32(value.Length);
        value.CopyTo(_buffer[_position..]);
        _position += value.Length;
    }

    /// <summary>Bytes already encoded, as they are (no length before them).</summary>
    public void WriteRaw(ReadOnlySpan<byte> value)
    {
        value.CopyTo(_buffer[_position..]);
        _position += value.Length;
    }

    public void WriteAddress(NodeAddress address)
    {
        WriteString(address.Host);
        WriteInt32(address.Port);
    }

    /// <summary>Bytes a string takes on the wire.</summary>
    public static int SizeOf(string? value) => 2 + Encoding.UTF8.GetByteCount(value ?? string.Empty);

    /// <summary>Bytes a byte string takes on the wire.</summary>
    public static int SizeOf(ReadOnlySpan<byte> value) => 4 + value.Length;

    /// <summary>Bytes an address takes on the wire.</summary>
    public static int SizeOf(NodeAddress address) => SizeOf(address.Host) + 4;
}

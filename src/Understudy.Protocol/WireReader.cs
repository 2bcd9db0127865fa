using System.Buffers.Binary;
using System.Text;

namespace Understudy.Protocol;

/// <summary>
/// Reads little-endian fields from one message body. Every read checks the remaining length
/// first, so a short or lying message raises <see cref="ProtocolException"/> instead of reading
/// past the frame or allocating what the sender claims.
/// </summary>
public ref struct WireReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private readonly string _message;
    private int _position;

    public WireReader(ReadOnlySpan<byte> buffer, string message)
    {
        _buffer = buffer;
        _message = message;
        _position = 0;
    }

    /// <summary>Bytes not yet read.</summary>
    public readonly int Remaining => _buffer.Length - _position;

    private void Need(int count, string field)
    {
        if (count < 0 || Remaining < count)
        {
            throw new ProtocolException($"{_message}: field '{field}' needs {count} bytes but only {Remaining} remain");
        }
    }

    public byte ReadByte(string field)
    {
        Need(1, field);
        return _buffer[_position++];
    }

    public bool ReadBool(string field)
    {
        var b = ReadByte(field);
        return b switch
        {
            0 => false,
            1 => true,
            _ => throw new ProtocolException($"{_message}: field '{field}' is a boolean but holds {b}"),
        };
    }

    public ushort ReadUInt16(string field)
    {
        Need(2, field);
        var v = BinaryPrimitives.ReadUInt16LittleEndian(_buffer[_position..]);
        _position += 2;
        return v;
    }

    public int ReadInt32(string field)
    {
        Need(4, field);
        var v = BinaryPrimitives.ReadInt32LittleEndian(_buffer[_position..]);
        _position += 4;
        return v;
    }

    public long ReadInt64(string field)
    {
        Need(8, field);
        var v = BinaryPrimitives.ReadInt64LittleEndian(_buffer[_position..]);
        _position += 8;
        return v;
    }

    public ulong ReadUInt64(string field)
    {
        Need(8, field);
        var v = BinaryPrimitives.ReadUInt64LittleEndian(_buffer[_position..]);
        _position += 8;
        return v;
    }

    /// <summary>A non-negative count, checked against what the rest of the body could hold.</summary>
    public int ReadCount(string field, int minBytesEach)
    {
        var count = ReadInt32(field);
        if (count < 0 || (minBytesEach > 0 && count > Remaining / minBytesEach))
        {
            throw new ProtocolException($"{_message}: field '{field}' claims {count} items, more than the {Remaining} remaining bytes can hold");
        }

        return count;
    }

    public string ReadString(string field)
    {
        var length = ReadUInt16(field);
        Need(length, field);
        string value;
        try
        {
            value = Encoding.UTF8.GetString(_buffer.Slice(_position, length));
        }
        catch (DecoderFallbackException e)
        {
            throw new ProtocolException($"{_message}: field '{field}' is not valid UTF-8", e);
        }

        _position += length;
        return value;
    }

    /// <summary>Reads a byte string and copies it out of the frame (frames are reused).</summary>
    public byte[] ReadBytes(string field)
    {
        var length = ReadInt32(field);
        Need(length, field);
        var value = _buffer.Slice(_position, length).ToArray();
        _position += length;
        return value;
    }

    /// <summary>Reads a byte string without copying; valid only while the frame is.</summary>
    public ReadOnlySpan<byte> ReadBytesSpan(string field)
    {
        var length = ReadInt32(field);
        Need(length, field);
        var value = _buffer.Slice(_position, length);
        _position += length;
        return value;
    }

    public NodeAddress ReadAddress(string field)
    {
        var host = ReadString(field);
        var port = ReadInt32(field);
        if (port is < 0 or > 65535)
        {
            throw new ProtocolException($"{_message}: field '{field}' has port {port}, outside 0..65535");
        }

        return host.Length == 0 && port == 0 ? NodeAddress.None : new NodeAddress(host, port);
    }

    public T ReadEnum<T>(string field, T max)
        where T : struct, Enum
    {
        var b = ReadByte(field);
        if (b == 0 || b > Convert.ToByte(max, System.Globalization.CultureInfo.InvariantCulture))
        {
            throw new ProtocolException($"{_message}: field '{field}' holds {b}, not a known {typeof(T).Name}");
        }

        return (T)Enum.ToObject(typeof(T), b);
    }

    /// <summary>Asserts the whole body was consumed: trailing bytes mean the sender disagrees on the layout.</summary>
    public readonly void End()
    {
        if (Remaining != 0)
        {
            throw new ProtocolException($"{_message}: {Remaining} unexpected bytes after the last field");
        }
    }
}

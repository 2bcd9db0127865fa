using System.Buffers;
using System.Buffers.Binary;

namespace Understudy.Protocol;

/// <summary>
/// Frames: a 4-byte little-endian length (of what follows), a <see cref="MessageType"/> byte, the body.
/// The length is checked against the limit before a byte of the body is buffered or allocated.
/// </summary>
public static class MessageCodec
{
    /// <summary>Bytes before the body: length and type.</summary>
    public const int HeaderSize = 5;

    /// <summary>Default largest frame accepted (16 MiB): big enough for a replication batch, small enough to refuse garbage.</summary>
    public const int DefaultMaxFrameSize = 16 * 1024 * 1024;

    /// <summary>Writes a whole frame for <paramref name="message"/> into <paramref name="writer"/>.</summary>
    public static int Write<T>(IBufferWriter<byte> writer, in T message)
        where T : IMessage
    {
        var size = message.Size;
        var span = writer.GetSpan(HeaderSize + size);
        BinaryPrimitives.WriteInt32LittleEndian(span, size + 1);
        span[4] = (byte)message.Type;
        message.Format(span.Slice(HeaderSize, size));
        writer.Advance(HeaderSize + size);
        return HeaderSize + size;
    }

    /// <summary>A whole frame as a new array (tests and one-off sends).</summary>
    public static byte[] ToFrame<T>(in T message)
        where T : IMessage
    {
        var buffer = new ArrayBufferWriter<byte>(HeaderSize + message.Size);
        Write(buffer, message);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Takes one whole frame off the front of <paramref name="buffer"/> if it holds one.
    /// Returns false when more bytes are needed; throws <see cref="ProtocolException"/> when the
    /// announced length is zero or over <paramref name="maxFrameSize"/>.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out MessageType type, out ReadOnlySequence<byte> body)
    {
        type = default;
        body = default;
        if (buffer.Length < 4)
        {
            return false;
        }

        int length;
        if (buffer.FirstSpan.Length >= 4)
        {
            length = BinaryPrimitives.ReadInt32LittleEndian(buffer.FirstSpan);
        }
        else
        {
            Span<byte> header = stackalloc byte[4];
            buffer.Slice(0, 4).CopyTo(header);
            length = BinaryPrimitives.ReadInt32LittleEndian(header);
        }

        if (length < 1)
        {
            throw new ProtocolException($"frame announces length {length}; every frame has at least a type byte");
        }

        if (length > maxFrameSize)
        {
            throw new ProtocolException($"frame announces {length} bytes, over the limit of {maxFrameSize}; refused before reading it");
        }

        if (buffer.Length < 4 + length)
        {
            return false;
        }

        var frame = buffer.Slice(4, length);
        type = (MessageType)frame.FirstSpan[0];
        body = frame.Slice(1);
        buffer = buffer.Slice(4 + length);
        return true;
    }

    /// <summary>Decodes a body of the given type into its message (boxed: for dispatch by type).</summary>
    public static IMessage Decode(MessageType type, ReadOnlySequence<byte> body)
    {
        if (body.IsSingleSegment)
        {
            return Decode(type, body.FirstSpan);
        }

        var length = checked((int)body.Length);
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            body.CopyTo(rented);
            return Decode(type, rented.AsSpan(0, length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Decodes a body of the given type into its message (boxed: for dispatch by type).</summary>
    public static IMessage Decode(MessageType type, ReadOnlySpan<byte> body) => type switch
    {
        MessageType.Heartbeat => Heartbeat.Parse(body),
        MessageType.HeartbeatAck => HeartbeatAck.Parse(body),
        MessageType.ConfigPush => ConfigPush.Parse(body),
        MessageType.InSyncChange => InSyncChange.Parse(body),
        MessageType.InSyncChangeResult => InSyncChangeResult.Parse(body),
        MessageType.StepDown => StepDown.Parse(body),
        MessageType.StepDownResult => StepDownResult.Parse(body),
        MessageType.Replicate => Replicate.Parse(body),
        MessageType.ReplicateAck => ReplicateAck.Parse(body),
        MessageType.SnapshotChunk => SnapshotChunk.Parse(body),
        MessageType.SnapshotAck => SnapshotAck.Parse(body),
        MessageType.ClientRequest => ClientRequest.Parse(body),
        MessageType.ClientResponse => ClientResponse.Parse(body),
        MessageType.PrimaryQuery => PrimaryQuery.Parse(body),
        MessageType.PrimaryUpdate => PrimaryUpdate.Parse(body),
        MessageType.AdminRequest => AdminRequest.Parse(body),
        MessageType.AdminResponse => AdminResponse.Parse(body),
        MessageType.Hello => Hello.Parse(body),
        MessageType.ProtocolError => ProtocolError.Parse(body),
        _ => throw new ProtocolException($"unknown message type {(byte)type}"),
    };
}

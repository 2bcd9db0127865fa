using System.Buffers;
using Understudy.Protocol;

namespace Understudy.Simulation;

/// <summary>
/// How simulated links turn a message into the bytes of one frame and back. The simulator uses
/// <see cref="FrameCodec"/>, the production codec; tests wrap it with broken ones to prove the sweep
/// notices a codec that loses information.
/// </summary>
public interface IFrameCodec
{
    /// <summary>Writes one whole frame (header and body) for <paramref name="message"/>.</summary>
    void Encode<T>(IBufferWriter<byte> writer, in T message)
        where T : IMessage;

    /// <summary>Reads back the one frame <paramref name="frame"/> holds; throws <see cref="ProtocolException"/> for anything malformed.</summary>
    IMessage Decode(ReadOnlyMemory<byte> frame);
}

/// <summary>
/// The production framing (<see cref="MessageCodec"/>): length prefix checked against the frame limit
/// before the body is touched, a type byte, the message's own encoding. The TCP transport also
/// authenticates frames with an HMAC; that guards the wire against strangers, not the protocol
/// against itself, so simulated links leave it out.
/// </summary>
public sealed class FrameCodec : IFrameCodec
{
    public static FrameCodec Instance { get; } = new();

    public void Encode<T>(IBufferWriter<byte> writer, in T message)
        where T : IMessage => MessageCodec.Write(writer, message);

    public IMessage Decode(ReadOnlyMemory<byte> frame)
    {
        var buffer = new ReadOnlySequence<byte>(frame);
        if (!MessageCodec.TryReadFrame(ref buffer, MessageCodec.DefaultMaxFrameSize, out var type, out var body))
        {
            throw new ProtocolException($"frame of {frame.Length} bytes is incomplete");
        }

        if (!buffer.IsEmpty)
        {
            throw new ProtocolException($"{buffer.Length} bytes left over after a {type} frame");
        }

        return MessageCodec.Decode(type, body);
    }
}

using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// A message already encoded: its type and body bytes, owned by this value. What a <see cref="BufferedPeer"/> keeps
/// while it connects, so the sender's memory (a catch-up frame's reused buffer) is free once the send returns.
/// </summary>
internal readonly record struct FormattedMessage(MessageType Type, byte[] Body) : IMessage
{
    public int Size => Body.Length;

    /// <summary>The body of <paramref name="message"/>, encoded now into an array of its own.</summary>
    public static FormattedMessage Of<T>(in T message)
        where T : IMessage
    {
        var body = new byte[message.Size];
        message.Format(body);
        return new FormattedMessage(message.Type, body);
    }

    public void Format(Span<byte> destination) => Body.CopyTo(destination);
}

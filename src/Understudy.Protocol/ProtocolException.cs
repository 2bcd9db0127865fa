namespace Understudy.Protocol;

/// <summary>
/// A frame or message that does not follow the protocol. The connection that sent it is told
/// why and closed; the process carries on serving everyone else.
/// </summary>
public sealed class ProtocolException : Exception
{
    public ProtocolException(string message)
        : base(message)
    {
    }

    public ProtocolException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public ProtocolException()
    {
    }
}

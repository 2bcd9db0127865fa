using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// Raised inside a connection's reading side when the peer broke the protocol; caught there, turned
/// into a <see cref="ProtocolError"/> frame, one log line and a close. It never leaves the connection.
/// </summary>
internal sealed class FrameViolationException : Exception
{
    public FrameViolationException(ProtocolErrorCode code, string message)
        : base(message) => Code = code;

    public FrameViolationException()
    {
    }

    public FrameViolationException(string message)
        : base(message)
    {
    }

    public FrameViolationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ProtocolErrorCode Code { get; } = ProtocolErrorCode.MalformedFrame;
}

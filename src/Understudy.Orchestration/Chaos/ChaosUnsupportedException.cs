namespace Understudy.Orchestration.Chaos;

/// <summary>The partition scenario cannot run on this machine; the message says why and how to fix it.</summary>
public sealed class ChaosUnsupportedException : Exception
{
    public ChaosUnsupportedException(string message)
        : base(message)
    {
    }

    public ChaosUnsupportedException()
    {
    }

    public ChaosUnsupportedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

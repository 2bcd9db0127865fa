namespace Understudy.Coordination.Etcd;

/// <summary>
/// The coordinator (etcd) could not be reached within the request timeout. For a compare-and-set the outcome is
/// unknown: the write may have committed. Asking again with the same expected version is safe, because a write that
/// did commit makes the retry a refusal that returns it.
/// </summary>
public sealed class CoordinatorUnavailableException : Exception
{
    public CoordinatorUnavailableException()
    {
    }

    public CoordinatorUnavailableException(string message)
        : base(message)
    {
    }

    public CoordinatorUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

namespace Understudy.Storage;

/// <summary>
/// A disk operation failed, or what is on disk cannot be trusted. The message is one line that says what
/// happened, where, and how to fix it, because it ends up in front of an operator; the cause, if any, is
/// the <see cref="Exception.InnerException"/>.
/// </summary>
public sealed class StorageException : Exception
{
    public StorageException()
    {
    }

    public StorageException(string message)
        : base(message)
    {
    }

    public StorageException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

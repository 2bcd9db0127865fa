namespace Understudy.Cli.Infrastructure;

/// <summary>A wrong flag, value or missing file: printed as one line with how to fix it, exit code 2.</summary>
internal sealed class UsageException : Exception
{
    public UsageException(string message)
        : base(message)
    {
    }

    public UsageException()
    {
    }

    public UsageException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

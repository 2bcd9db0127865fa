namespace Understudy.Cli.Infrastructure;

/// <summary>
/// A runtime failure of a correct command (no monitor answers, a child exited during start-up): printed as one
/// `error:` line saying what to do, exit code 1. A mistake in the command itself is a <see cref="UsageException"/>.
/// </summary>
internal sealed class CliFailure : Exception
{
    public CliFailure(string message)
        : base(message)
    {
    }

    public CliFailure()
    {
    }

    public CliFailure(string message, Exception inner)
        : base(message, inner)
    {
    }
}

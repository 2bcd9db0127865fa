using Understudy.Core.Client;

namespace Understudy.Client;

/// <summary>A call that did not succeed: <see cref="Outcome"/> says whether it may still have been applied.</summary>
public sealed class UnderstudyException : Exception
{
    public UnderstudyException(string message, OutcomeKind outcome)
        : base(message) => Outcome = outcome;

    public UnderstudyException()
    {
    }

    public UnderstudyException(string message)
        : base(message)
    {
    }

    public UnderstudyException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>Failed: surely not applied. Unknown: sent, unanswered before the deadline; may have been applied.</summary>
    public OutcomeKind Outcome { get; }
}

/// <summary>
/// A call its caller cancelled. <see cref="Outcome"/> says what became of it: <see cref="OutcomeKind.Failed"/> when it
/// was cancelled before it was sent (it never will be: surely not applied), <see cref="OutcomeKind.Unknown"/> when it was
/// already on its way to a server (it may have been applied, exactly as after a deadline). An
/// <see cref="OperationCanceledException"/>, so code that catches cancellation the usual way still does.
/// </summary>
public sealed class UnderstudyCanceledException : OperationCanceledException
{
    public UnderstudyCanceledException(string message, OutcomeKind outcome, CancellationToken token)
        : base(message, token) => Outcome = outcome;

    public UnderstudyCanceledException()
    {
    }

    public UnderstudyCanceledException(string message)
        : base(message)
    {
    }

    public UnderstudyCanceledException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>Failed: never sent, surely not applied. Unknown: sent before the cancellation; may have been applied.</summary>
    public OutcomeKind Outcome { get; }
}

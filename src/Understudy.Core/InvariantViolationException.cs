namespace Understudy.Core;

/// <summary>
/// A node's local invariant broke: its state is one the protocol never reaches, so something upstream is a bug.
/// The message names the invariant and the values that broke it. Thrown by <c>CheckInvariants</c>; the
/// simulator reports it as a violation, debug builds let it fly.
/// </summary>
public sealed class InvariantViolationException : Exception
{
    public InvariantViolationException()
    {
    }

    public InvariantViolationException(string message)
        : base(message)
    {
    }

    public InvariantViolationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The invariant, stated as the code checks it, and the values that broke it.</summary>
    public InvariantViolationException(string invariant, string values)
        : base($"invariant '{invariant}' broken: {values}")
    {
        Invariant = invariant;
    }

    /// <summary>The rule that broke (null when built from a bare message).</summary>
    public string? Invariant { get; }
}

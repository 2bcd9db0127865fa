namespace Understudy.Core;

/// <summary>A node's local invariant no longer holds: a bug in the protocol logic, never a fault to recover from.</summary>
public sealed class InvariantViolationException(string message) : Exception(message);

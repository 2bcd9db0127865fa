namespace Understudy.Core.StateMachines;

/// <summary>
/// Where a committed command sits in the log, handed to <see cref="IStateMachine.Apply"/>. Both values come from
/// the log entry itself, so every replica sees the same context for the same entry, and a state machine that
/// decides anything from time (an expiry, a session's idleness) decides it the same way everywhere.
/// </summary>
/// <param name="Index">The entry's position in the log (from 1).</param>
/// <param name="LogTimeMs">
/// The primary's clock when it logged the entry, in Unix milliseconds; never decreasing along the log. A state
/// machine must use this, never its own replica's clock, for anything time-dependent. Zero when the entry carries
/// no time.
/// </param>
public readonly record struct ApplyContext(long Index, long LogTimeMs);

using System.Buffers;

namespace Understudy.Core.StateMachines;

/// <summary>
/// The service being made redundant. Every server applies the same committed commands in the same
/// order, so <see cref="Apply"/> must be deterministic: same state and command, same result and state.
/// All members are called on the server's one event loop, never concurrently. The full contract, and what a
/// server does when it is broken, is in docs/STATE-MACHINES.md.
/// </summary>
public interface IStateMachine
{
    /// <summary>
    /// Applies a committed command at <see cref="ApplyContext.Index"/> and returns its result. Deterministic: no clock
    /// (use <see cref="ApplyContext.LogTimeMs"/>), no randomness, no I/O. Must not throw: the entry is committed, and a
    /// server whose Apply throws stops rather than let its state diverge. Must be fast: it holds up the node's loop
    /// (heartbeats, replication); slow ones are logged and counted.
    /// </summary>
    ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context);

    /// <summary>Answers a read against the current state without changing it (on the primary, under its lease).</summary>
    ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query);

    /// <summary>
    /// Rejects a command before it is logged (the client gets the reason, nothing is applied); null when the command
    /// is well formed. The place to refuse what <see cref="Apply"/> could not apply.
    /// </summary>
    string? Validate(ReadOnlySpan<byte> command);

    /// <summary>
    /// Writes the whole state, deterministically (sorted keys, invariant formatting): the same state always gives the
    /// same bytes, and <see cref="Restore"/> of them gives back exactly that state.
    /// </summary>
    void WriteSnapshot(IBufferWriter<byte> writer);

    /// <summary>Replaces the state with a snapshot written by <see cref="WriteSnapshot"/>.</summary>
    void Restore(ReadOnlySpan<byte> snapshot);
}

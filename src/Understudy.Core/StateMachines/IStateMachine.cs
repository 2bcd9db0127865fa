using System.Buffers;

namespace Understudy.Core.StateMachines;

/// <summary>
/// The service being made redundant. Every server applies the same committed commands in the same
/// order, so <see cref="Apply"/> must be deterministic: same state and command, same result and state.
/// </summary>
public interface IStateMachine
{
    /// <summary>Applies a committed command at <see cref="ApplyContext.Index"/> and returns its result.</summary>
    ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context);

    /// <summary>Answers a read against the current state without changing it.</summary>
    ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query);

    /// <summary>Rejects a command before it is logged; null when the command is well formed.</summary>
    string? Validate(ReadOnlySpan<byte> command);

    /// <summary>Writes the whole state.</summary>
    void WriteSnapshot(IBufferWriter<byte> writer);

    /// <summary>Replaces the state with a snapshot written by <see cref="WriteSnapshot"/>.</summary>
    void Restore(ReadOnlySpan<byte> snapshot);
}

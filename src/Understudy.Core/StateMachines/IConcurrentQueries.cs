namespace Understudy.Core.StateMachines;

/// <summary>
/// A state machine that can answer queries on any thread while the server's loop applies commands, so the primary
/// can answer a linearizable read on the thread that decoded it instead of handing it to the loop
/// (docs/ARCHITECTURE.md, "Reads without the loop"). Optional: a machine without it has every read answered on the loop.
/// </summary>
/// <remarks>
/// The contract, beyond <see cref="IStateMachine.Query"/>'s: <see cref="QueryConcurrently"/> may run on many threads at
/// once, concurrently with one <see cref="IStateMachine.Apply"/> at a time; its answer must equal
/// <see cref="IStateMachine.Query"/>'s against the state after some apply that had not yet returned when the call
/// began or that returned during it, never an older one. So every command whose <see cref="IStateMachine.Apply"/>
/// returned before the call began must be in the answer (the server acknowledges a write only after applying it).
/// <see cref="IStateMachine.Restore"/> is never called while a concurrent query's answer can still be used (the server
/// withdraws the fast path first, and discards answers that overlapped a withdrawal), but it must not crash one.
/// </remarks>
public interface IConcurrentQueries
{
    /// <summary>Answers <paramref name="query"/> as <see cref="IStateMachine.Query"/> would, from any thread (see the remarks on the type).</summary>
    ReadOnlyMemory<byte> QueryConcurrently(ReadOnlySpan<byte> query);
}

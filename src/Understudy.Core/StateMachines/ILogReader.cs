using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>
/// Read access to the committed log, for a state machine whose data is the log itself (the message store keeps
/// only where each message sits and reads its text back through this). <c>ServerNode</c> provides it from its
/// in-memory window and the log on disk.
/// </summary>
public interface ILogReader
{
    /// <summary>The oldest entry still readable.</summary>
    long FirstIndex { get; }

    /// <summary>Up to <paramref name="maxCount"/> consecutive entries from <paramref name="from"/> (at least one when it exists), about <paramref name="maxBytes"/> at most.</summary>
    LogEntry[] Read(long from, int maxCount, int maxBytes);
}

/// <summary>
/// A state machine that reads its data back from the log. The node hands it the log when it starts, and asks
/// it which entries it still needs before compacting the log.
/// </summary>
public interface ILogBackedStateMachine : IStateMachine
{
    /// <summary>Given once, before anything is applied or restored.</summary>
    void AttachLog(ILogReader log);

    /// <summary>The lowest log index the machine may still read; the log is never compacted above it.</summary>
    long RetainedFromIndex { get; }
}

using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// The monitor's event history: every transition it makes, numbered, stamped with the epoch of the
/// configuration it held then, kept up to <see cref="MonitorOptions.MaxEvents"/> and reported to the host.
/// </summary>
internal sealed class MonitorJournal(int maxEvents, IMonitorEnvironment environment, TimeProvider time, Func<long> currentEpoch)
{
    private readonly LinkedList<MonitorEvent> _events = new();
    private long _sequence;

    /// <summary>The most recent events, oldest first.</summary>
    public IReadOnlyCollection<MonitorEvent> Events => _events;

    /// <summary>The sequence number of the last event recorded (0 before any).</summary>
    public long LastSequence => _sequence;

    public void Record(MonitorEventKind kind, NodeAddress member, string detail, double? elapsedMs = null)
    {
        var e = new MonitorEvent(++_sequence, time.GetUtcNow(), kind, member, currentEpoch(), detail, elapsedMs);
        _events.AddLast(e);
        while (_events.Count > maxEvents)
        {
            _events.RemoveFirst();
        }

        environment.Report(e);
    }
}

using System.Buffers;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Understudy.Core.StateMachines;

namespace Understudy.Hosting;

/// <summary>
/// The user's state machine as a server runs it: every call goes through unchanged, with two duties on top.
/// <list type="bullet">
/// <item>A throwing <see cref="IStateMachine.Apply"/> is a determinism failure. The entry is committed already and the
/// replicated state has counted it, so carrying on would leave this replica's state different from the others'. The
/// server is told to stop (<see cref="ServerHost.Fatal"/>), and from then on every call throws: no query is answered
/// and no snapshot of the broken state is written.</item>
/// <item>Apply runs on the node's loop, where heartbeats and replication wait for it: each one is timed, and one slower
/// than <see cref="ServerHostOptions.SlowApplyThreshold"/> is logged (at most once a second, with how many were slow)
/// and counted in <c>understudy_server_slow_applies_total</c>.</item>
/// </list>
/// Used only on the node's loop, but for <see cref="IConcurrentQueries.QueryConcurrently"/> where the machine offers it.
/// </summary>
internal class GuardedStateMachine : IStateMachine
{
    private static readonly long WarnEvery = Stopwatch.Frequency;
    private readonly long _slowTicks;
    private readonly ServerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Action<string> _fatal;
    private string? _failure;
    private long _lastWarnedAt = long.MinValue;
    private int _slowSinceWarning;

    protected GuardedStateMachine(IStateMachine inner, TimeSpan slowApply, ServerMetrics metrics, ILogger logger, Action<string> fatal)
    {
        Inner = inner;
        _slowTicks = (long)(slowApply.TotalSeconds * Stopwatch.Frequency);
        _metrics = metrics;
        _logger = logger;
        _fatal = fatal;
    }

    /// <summary>The user's state machine.</summary>
    public IStateMachine Inner { get; }

    /// <summary>Wraps <paramref name="inner"/>, keeping it an <see cref="ILogBackedStateMachine"/> or an <see cref="IConcurrentQueries"/> when it is one.</summary>
    public static GuardedStateMachine Wrap(IStateMachine inner, TimeSpan slowApply, ServerMetrics metrics, ILogger logger, Action<string> fatal) =>
        inner switch
        {
            ILogBackedStateMachine backed => new LogBacked(backed, slowApply, metrics, logger, fatal),
            IConcurrentQueries concurrent => new Concurrent(inner, concurrent, slowApply, metrics, logger, fatal),
            _ => new GuardedStateMachine(inner, slowApply, metrics, logger, fatal),
        };

    /// <summary>The user's state machine behind a guard, or <paramref name="machine"/> itself.</summary>
    public static IStateMachine Unwrap(IStateMachine machine) => machine is GuardedStateMachine guarded ? guarded.Inner : machine;

    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context)
    {
        ThrowIfFailed();
        var started = Stopwatch.GetTimestamp();
        ReadOnlyMemory<byte> result;
        try
        {
            result = Inner.Apply(command, context);
        }
        catch (Exception e)
        {
            _failure = $"the state machine ({Inner.GetType().Name}) threw applying entry {context.Index}: {e.GetType().Name}: {e.Message}; " +
                "stopping this server so its state cannot diverge from the other replicas' (Apply must not throw: return an error result instead)";
            LogMessages.ApplyFailed(_logger, context.Index, Inner.GetType().Name, e);
            _fatal(_failure);
            throw new StateMachineFailedException(_failure, e);
        }

        var elapsed = Stopwatch.GetTimestamp() - started;
        if (elapsed > _slowTicks)
        {
            NoteSlow(elapsed, context.Index);
        }

        return result;
    }

    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query)
    {
        ThrowIfFailed();
        return Inner.Query(query);
    }

    public string? Validate(ReadOnlySpan<byte> command)
    {
        ThrowIfFailed();
        return Inner.Validate(command);
    }

    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        ThrowIfFailed();
        Inner.WriteSnapshot(writer);
    }

    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        ThrowIfFailed();
        Inner.Restore(snapshot);
    }

    private void ThrowIfFailed()
    {
        if (_failure is { } failure)
        {
            throw new StateMachineFailedException(failure);
        }
    }

    private void NoteSlow(long elapsed, long index)
    {
        var seconds = (double)elapsed / Stopwatch.Frequency;
        _metrics.SlowApplies.Inc();
        if (seconds > _metrics.SlowestApply.Value)
        {
            _metrics.SlowestApply.Set(seconds);
        }

        _slowSinceWarning++;
        var now = Stopwatch.GetTimestamp();
        if (_lastWarnedAt == long.MinValue || now - _lastWarnedAt >= WarnEvery)
        {
            LogMessages.SlowApply(_logger, index, seconds * 1000, (double)_slowTicks * 1000 / Stopwatch.Frequency, _slowSinceWarning);
            _lastWarnedAt = now;
            _slowSinceWarning = 0;
        }
    }

    /// <summary>The guard around a state machine whose queries may run off the loop (the key-value store): they pass straight through, refused once the machine failed.</summary>
    private sealed class Concurrent(IStateMachine inner, IConcurrentQueries queries, TimeSpan slowApply, ServerMetrics metrics, ILogger logger, Action<string> fatal)
        : GuardedStateMachine(inner, slowApply, metrics, logger, fatal), IConcurrentQueries
    {
        public ReadOnlyMemory<byte> QueryConcurrently(ReadOnlySpan<byte> query)
        {
            ThrowIfFailed();
            return queries.QueryConcurrently(query);
        }
    }

    /// <summary>The guard around a state machine that reads its data back from the log (the message store).</summary>
    private sealed class LogBacked(ILogBackedStateMachine inner, TimeSpan slowApply, ServerMetrics metrics, ILogger logger, Action<string> fatal)
        : GuardedStateMachine(inner, slowApply, metrics, logger, fatal), ILogBackedStateMachine
    {
        public long RetainedFromIndex => inner.RetainedFromIndex;

        public void AttachLog(ILogReader log) => inner.AttachLog(log);
    }
}

/// <summary>The state machine threw in <see cref="IStateMachine.Apply"/>: this server has stopped applying and must stop.</summary>
public sealed class StateMachineFailedException : Exception
{
    public StateMachineFailedException()
    {
    }

    public StateMachineFailedException(string message)
        : base(message)
    {
    }

    public StateMachineFailedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

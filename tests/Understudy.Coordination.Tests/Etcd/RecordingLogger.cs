using Microsoft.Extensions.Logging;

namespace Understudy.Coordination.Tests.Etcd;

/// <summary>Keeps every formatted line, so a test can check what an operator would read.</summary>
public sealed class RecordingLogger : ILogger
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var line = $"{logLevel}: {formatter(state, exception)}";
        lock (_lines)
        {
            _lines.Add(line);
        }
    }
}

using Microsoft.Extensions.Logging;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Storage.Tests;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on Dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder() => Path = Directory.CreateTempSubdirectory("understudy-storage-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string[] Segments() =>
        [.. Directory.GetFiles(Path, "*.log").Select(System.IO.Path.GetFileName).Order(StringComparer.Ordinal)!];

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a test that failed may still hold a file open.
        }
    }
}

/// <summary>Log entries with recognisable, deterministic content.</summary>
internal static class Entries
{
    // 8-byte commands make 69-byte records (8 header + 53 fixed + 8), the record size the tests' segment boundaries and
    // byte counts were worked out for (format 1 had 16-byte commands and 8 fewer fixed bytes).
    public const int DefaultCommandSize = 8;

    public static LogEntry Make(long index, long epoch = 1, int commandSize = DefaultCommandSize)
    {
        var command = new byte[commandSize];
        new Random((int)index * 31 + (int)epoch).NextBytes(command);
        return new LogEntry(index, epoch, EntryKind.Command, (ulong)(1000 + index), index, index - 1, command, 1_764_650_000_000 + index);
    }

    public static LogEntry[] Range(long first, long last, long epoch = 1, int commandSize = DefaultCommandSize)
    {
        var result = new LogEntry[last - first + 1];
        for (var i = first; i <= last; i++)
        {
            result[i - first] = Make(i, epoch, commandSize);
        }

        return result;
    }

    /// <summary>Field-by-field comparison, command bytes by content.</summary>
    public static void AssertSame(IReadOnlyList<LogEntry> expected, IReadOnlyList<LogEntry> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var a = actual[i];
            Assert.Equal((e.Index, e.Epoch, e.Kind, e.ClientId, e.RequestSeq, e.FirstIncomplete, e.LogTimeMs), (a.Index, a.Epoch, a.Kind, a.ClientId, a.RequestSeq, a.FirstIncomplete, a.LogTimeMs));
            Assert.Equal(e.Command.ToArray(), a.Command.ToArray());
        }
    }
}

/// <summary>Records Synced callbacks and lets a test wait for one, with a deadline.</summary>
internal sealed class SyncRecorder
{
    private readonly Lock _lock = new();
    private readonly List<(long Through, long Generation)> _calls = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public List<(long Through, long Generation)> Calls
    {
        get
        {
            lock (_lock)
            {
                return [.. _calls];
            }
        }
    }

    public void OnSynced(long through, long generation)
    {
        TaskCompletionSource changed;
        lock (_lock)
        {
            _calls.Add((through, generation));
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.SetResult();
    }

    public async Task WaitForAsync(long through, long generation = 0, int seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_calls.Any(c => c.Generation == generation && c.Through >= through))
                {
                    return;
                }

                changed = _changed.Task;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                Assert.Fail($"no Synced({through}, {generation}) within {seconds} s; got [{string.Join(", ", Calls)}]");
            }

            try
            {
                await changed.WaitAsync(left, TestContext.Current.CancellationToken);
            }
            catch (TimeoutException)
            {
                // Checked again above, then reported.
            }
        }
    }
}

/// <summary>Waits for a condition that another thread makes true, failing after a deadline.</summary>
internal static class Eventually
{
    public static Task TrueAsync(Func<bool> condition, string what, int seconds = 10) =>
        Poll.UntilAsync(condition, TimeSpan.FromSeconds(seconds), $"waiting for {what}", () => "it is still not so", TestContext.Current.CancellationToken);
}

/// <summary>An ILogger that keeps what it is given, to check what recovery reported.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly Lock _lock = new();
    private readonly List<(LogLevel Level, EventId Id, string Message)> _lines = [];

    public List<(LogLevel Level, EventId Id, string Message)> Lines
    {
        get
        {
            lock (_lock)
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
        lock (_lock)
        {
            _lines.Add((logLevel, eventId, formatter(state, exception)));
        }
    }
}

using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Understudy.Coordination.Raft;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;

namespace Understudy.Coordination.Tests.Raft;

/// <summary>
/// Three in-process <see cref="RaftCoordinator"/>s on OS-chosen loopback ports, each with its own temporary data
/// folder. Members can be stopped (disposed, as a crash would leave them as far as the others can tell) and
/// restarted on the same folder. Disposing the group stops every member and deletes the folders.
/// </summary>
internal sealed class RaftGroup : IAsyncDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("understudy-raft-").FullName;
    private readonly RaftCoordinatorOptions[] _options;
    private readonly RaftCoordinator?[] _members;

    private readonly PartitionProxy[] _proxies;
    private readonly LogLevel _capture;

    /// <param name="size">How many members.</param>
    /// <param name="snapshotEvery">Passed to every member's options.</param>
    /// <param name="proxied">Put a <see cref="PartitionProxy"/> in front of every member, so <see cref="Cut"/> can partition it.</param>
    /// <param name="capture">The lowest level captured into <see cref="Lines"/>; Debug takes DotNext's replication chatter too.</param>
    /// <param name="tune">Changes every member's options (the same way for all), e.g. slower timers.</param>
    public RaftGroup(int size = 3, int snapshotEvery = 64, bool proxied = false, LogLevel capture = LogLevel.Information, Func<RaftCoordinatorOptions, RaftCoordinatorOptions>? tune = null)
    {
        tune ??= o => o;
        _capture = capture;
        // Distinct from each other and from every port this test process handed out before (two port-0 choices can repeat).
        var listen = PortReservations.Take(size);
        _proxies = proxied ? [.. listen.Select(port => new PartitionProxy(port))] : [];
        var all = Enumerable.Range(0, size)
            .Select(i => new MonitorGroupMember(
                new NodeAddress("127.0.0.1", proxied ? _proxies[i].Port : listen[i]),
                new NodeAddress("127.0.0.1", 19000 + i),
                new NodeAddress("127.0.0.1", 19100 + i)))
            .ToArray();
        _options = [.. all.Select((self, i) => tune(new RaftCoordinatorOptions
        {
            Self = self,
            Listen = new NodeAddress("127.0.0.1", listen[i]),
            Peers = [.. all.Where(m => m != self)],
            DataDirectory = Path.Combine(_root, "m" + i),
            SnapshotEvery = snapshotEvery,
        }))];
        _members = new RaftCoordinator?[size];
    }

    /// <summary>Silences (or restores) all traffic to member <paramref name="i"/>; needs a proxied group.</summary>
    public void Cut(int i, bool cut) => _proxies[i].Cut = cut;

    /// <summary>Every line any member logged, "member: message".</summary>
    public ConcurrentQueue<string> Lines { get; } = new();

    public int Size => _members.Length;

    public RaftCoordinatorOptions OptionsOf(int i) => _options[i];

    public RaftCoordinator this[int i] => _members[i] ?? throw new InvalidOperationException($"member {i} is stopped");

    public bool IsRunning(int i) => _members[i] is not null;

    public IEnumerable<int> Running => Enumerable.Range(0, Size).Where(IsRunning);

    public async Task StartAllAsync(CancellationToken cancellationToken) =>
        await Task.WhenAll(Enumerable.Range(0, Size).Select(i => StartAsync(i, cancellationToken))).ConfigureAwait(false);

    /// <param name="i">The member.</param>
    /// <param name="beforeSnapshotRestore">A fault to set on it (<see cref="RaftCoordinator.BeforeSnapshotRestore"/>).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public async Task<RaftCoordinator> StartAsync(int i, CancellationToken cancellationToken, Func<CancellationToken, ValueTask>? beforeSnapshotRestore = null)
    {
        var member = new RaftCoordinator(_options[i], new CapturingLoggerFactory(i, _capture, Lines)) { BeforeSnapshotRestore = beforeSnapshotRestore };
        try
        {
            await member.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await member.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _members[i] = member;
        return member;
    }

    public async Task StopAsync(int i)
    {
        if (_members[i] is { } member)
        {
            _members[i] = null;
            await member.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Records, per running member, the last configuration its ConfigChanged event raised.</summary>
    public ConcurrentDictionary<int, ClusterConfig> ObserveConfigs()
    {
        var observed = new ConcurrentDictionary<int, ClusterConfig>();
        foreach (var i in Running)
        {
            var member = i;
            this[i].ConfigChanged += c => observed[member] = c;
        }

        return observed;
    }

    /// <summary>The running members that consider themselves active.</summary>
    public int[] Active() => [.. Running.Where(i => _members[i]!.Leadership.IsActive)];

    /// <summary>Waits until exactly one running member is active and every running member names it; returns its index.</summary>
    public Task<int> WaitForSingleLeaderAsync(string phase, CancellationToken cancellationToken) =>
        WaitForSingleLeaderAsync(phase, confirmed: false, cancellationToken);

    /// <summary>As <see cref="WaitForSingleLeaderAsync(string, CancellationToken)"/>, and its leadership is confirmed until later than now.</summary>
    public Task<int> WaitForConfirmedLeaderAsync(string phase, CancellationToken cancellationToken) =>
        WaitForSingleLeaderAsync(phase, confirmed: true, cancellationToken);

    private async Task<int> WaitForSingleLeaderAsync(string phase, bool confirmed, CancellationToken cancellationToken)
    {
        var leader = -1;
        await Understudy.Orchestration.Polling.Poll.UntilAsync(
            () =>
            {
                var active = Active();
                if (active.Length != 1)
                {
                    return false;
                }

                leader = active[0];
                var heartbeat = _options[leader].Self.Heartbeat;
                return Running.All(i => _members[i]!.Leadership.Active == heartbeat) &&
                    (!confirmed || _members[leader]!.Leadership.ConfirmedUntil > System.Diagnostics.Stopwatch.GetTimestamp());
            },
            TimeSpan.FromSeconds(30),
            phase + ": exactly one active monitor that every running member names" + (confirmed ? ", confirmed" : ""),
            Describe,
            cancellationToken).ConfigureAwait(false);
        return leader;
    }

    /// <summary>
    /// The preamble of the tests that need a history: starts every member, waits for one leader, and commits
    /// <paramref name="changes"/> configurations through the group, naming primaries <paramref name="firstPort"/>,
    /// + 1, ... Returns the leader found at the start and the last configuration committed.
    /// </summary>
    public async Task<(int Leader, ClusterConfig Config)> StartAndCommitAsync(int changes, int firstPort, CancellationToken cancellationToken)
    {
        await StartAllAsync(cancellationToken).ConfigureAwait(false);
        var leader = await WaitForSingleLeaderAsync("before the writes", cancellationToken).ConfigureAwait(false);
        var config = await this[leader].LoadAsync(cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < changes; i++)
        {
            var next = Configs.Next(config, firstPort + i);
            Assert.True((await CompareAndSetAsync(config.Version, next, cancellationToken).ConfigureAwait(false)).Committed, $"change {i + 1} of {changes} did not commit");
            config = next;
        }

        return (leader, config);
    }

    /// <summary>
    /// A compare-and-set through whichever member is active, as a host would do it: when leadership moves while
    /// the entry is in flight, it asks the new leader, and a refusal that shows its own configuration means the
    /// earlier attempt committed. For tests whose point is not the write path itself.
    /// </summary>
    public async Task<Understudy.Storage.ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken)
    {
        var attempts = 0;
        Exception? lastRefusal = null;
        var written = await Understudy.Orchestration.Polling.Poll.ForAsync<Understudy.Storage.ConfigWriteResult?>(
            async t =>
            {
                var leader = await WaitForSingleLeaderAsync("compare-and-set", t).ConfigureAwait(false);
                try
                {
                    var result = await this[leader].CompareAndSetAsync(expectedVersion, next, t).ConfigureAwait(false);
                    return attempts++ > 0 && !result.Committed && result.Current.SameAs(next) ? new(true, next) : result;
                }
                catch (NotActiveMonitorException e)
                {
                    // Leadership moved (or the views were a round behind): ask again.
                    attempts++;
                    lastRefusal = e;
                    return null;
                }
            },
            result => result is not null,
            TimeSpan.FromSeconds(30),
            "compare-and-set through the active monitor",
            _ => $"{attempts} attempt(s), last refusal: {lastRefusal?.Message}; {Describe()}",
            cancellationToken).ConfigureAwait(false);
        return written!.Value;
    }

    public string Describe() => string.Join("; ", Enumerable.Range(0, Size).Select(i =>
        _members[i] is { } m ? $"m{i} {m.Leadership}" : $"m{i} stopped"));

    /// <summary>The last <paramref name="count"/> captured lines, one a line, for a failure message.</summary>
    public string Log(int count = 200)
    {
        var lines = Lines.ToArray();
        var shown = lines.Skip(Math.Max(0, lines.Length - count));
        return $"last {Math.Min(count, lines.Length)} of {lines.Length} log lines:{Environment.NewLine}" + string.Join(Environment.NewLine, shown);
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < Size; i++)
        {
            await StopAsync(i).ConfigureAwait(false);
        }

        foreach (var proxy in _proxies)
        {
            await proxy.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A temp folder left behind is not worth failing a test for.
        }
    }

    private sealed class CapturingLoggerFactory(int member, LogLevel capture, ConcurrentQueue<string> lines) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new CapturingLogger(member, capture, categoryName, lines);

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }
    }

    private sealed class CapturingLogger(int member, LogLevel capture, string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= capture;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                // The time and the exception make a failure's log readable on its own: the order of a
                // snapshot install, an append and an error is what a catch-up failure turns on.
                var source = category[(category.LastIndexOf('.') + 1)..];
                var error = exception is null ? "" : $" [{exception.GetType().Name}: {exception.Message}]";
                lines.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} m{member} {logLevel} {source}: {formatter(state, exception)}{error}");
            }
        }
    }
}

internal static class Configs
{
    /// <summary>A configuration one version on from <paramref name="config"/>, naming <paramref name="primary"/>.</summary>
    public static ClusterConfig Next(ClusterConfig config, int primary) => config with
    {
        Epoch = config.Epoch + 1,
        Version = config.Version + 1,
        Primary = new NodeAddress("127.0.0.1", primary),
        InSync = [new NodeAddress("127.0.0.1", primary)],
        Members = ImmutableArray.Create(new MemberInfo(new NodeAddress("127.0.0.1", primary), 1)),
    };
}

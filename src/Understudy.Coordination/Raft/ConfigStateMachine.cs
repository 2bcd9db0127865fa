using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Extensions.Logging;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Coordination.Raft;

/// <summary>
/// What the monitor group's Raft log builds: the committed <see cref="ClusterConfig"/>. Every member applies the same
/// committed entries in the same order, so every member decides each compare-and-set the same way. DotNext's
/// <see cref="SimpleStateMachine"/> keeps the state in memory and writes a snapshot file when asked, after which the
/// write-ahead log drops the entries the snapshot covers.
/// </summary>
internal sealed class ConfigStateMachine : SimpleStateMachine
{
    private readonly int _snapshotEvery;
    private readonly ILogger _logger;
    private ClusterConfig _current = ClusterConfig.Initial;
    private int _sinceSnapshot;

    // 1 once RequestSnapshot was called: the next applied entry, whatever it is, is written as a snapshot.
    private int _snapshotRequested;

    public ConfigStateMachine(DirectoryInfo location, int snapshotEvery, ILogger logger)
        : base(location)
    {
        _snapshotEvery = snapshotEvery;
        _logger = logger;
    }

    /// <summary>Raised on the log's applier after each committed change, on every member, in log order.</summary>
    public event Action<ClusterConfig>? Changed;

    /// <summary>The configuration as of the last applied entry.</summary>
    public ClusterConfig Current => Volatile.Read(ref _current);

    /// <summary>The decision for <paramref name="command"/> against <paramref name="current"/>: the same rule as <see cref="FileConfigurationStore"/>.</summary>
    public static ConfigWriteResult Decide(ClusterConfig current, ConfigCommand command) =>
        current.Version == command.ExpectedVersion && command.Next.Version > current.Version && command.Next.Epoch >= current.Epoch
            ? new ConfigWriteResult(true, command.Next)
            : new ConfigWriteResult(false, current);

    /// <summary>
    /// Has the next applied entry written as a snapshot (DotNext makes it the one it ships once a later entry is
    /// applied), however few changes came since the last one. See <see cref="RaftCoordinator"/>'s remarks on a
    /// refused snapshot.
    /// </summary>
    public void RequestSnapshot() => Volatile.Write(ref _snapshotRequested, 1);

    /// <summary>A test's fault: runs before each restore from a snapshot, e.g. to make one slower than the request timeout.</summary>
    internal Func<CancellationToken, ValueTask>? BeforeRestore { get; set; }

    protected override async ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
    {
        if (BeforeRestore is { } fault)
        {
            await fault(token).ConfigureAwait(false);
        }

        var bytes = await File.ReadAllBytesAsync(snapshotFile.FullName, token).ConfigureAwait(false);
        var config = ConfigCommand.ParseSnapshot(bytes);
        Volatile.Write(ref _current, config);
        _logger.RaftSnapshotRestored(config, snapshotFile.FullName);
    }

    protected override ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token) =>
        writer.Invoke(ConfigCommand.SnapshotBytes(Current), token);

    protected override ValueTask<bool> ApplyAsync(DotNext.Net.Cluster.Consensus.Raft.StateMachine.LogEntry entry, CancellationToken token)
    {
        // A new leader's no-op, the coordinator's no-op entries and DotNext's membership entries carry no configuration.
        if (entry.IsConfiguration || !entry.TryGetPayload(out var payload) || payload.IsEmpty || ConfigCommand.IsNoOp(payload))
        {
            return ValueTask.FromResult(SnapshotDue(changed: false));
        }

        ConfigCommand command;
        try
        {
            command = ConfigCommand.Parse(payload);
        }
        catch (FormatException e)
        {
            _logger.RaftEntryUnreadable(entry.Index, e.Message);
            return ValueTask.FromResult(SnapshotDue(changed: false));
        }

        var result = Decide(Current, command);
        if (entry.Context is PendingWrite pending)
        {
            pending.Result = result;
        }

        if (!result.Committed)
        {
            _logger.RaftConfigRefused(entry.Index, command.ExpectedVersion, result.Current.Version);
            return ValueTask.FromResult(SnapshotDue(changed: false));
        }

        Volatile.Write(ref _current, command.Next);
        _logger.RaftConfigApplied(command.Next, entry.Index);
        try
        {
            Changed?.Invoke(command.Next);
        }
        catch (Exception e)
        {
            // A subscriber's bug must not stop the log from applying.
            _logger.RaftHandlerFailed(e, nameof(Changed));
        }

        return ValueTask.FromResult(SnapshotDue(changed: true));
    }

    // Whether the entry just applied is written as a snapshot: every SnapshotEvery changes, or once when requested.
    private bool SnapshotDue(bool changed)
    {
        var requested = Interlocked.Exchange(ref _snapshotRequested, 0) != 0;
        if (changed)
        {
            _sinceSnapshot++;
        }

        if (!requested && _sinceSnapshot < _snapshotEvery)
        {
            return false;
        }

        _sinceSnapshot = 0;
        return true;
    }
}

/// <summary>
/// Travels with a compare-and-set through DotNext's log entry context to the leader's apply, which fills in the
/// decision; followers apply the same entry without it.
/// </summary>
internal sealed class PendingWrite
{
    // Boxed so it can be published with a volatile write: the applier sets it, the caller reads it after the apply.
    private object? _result;

    public ConfigWriteResult? Result
    {
        get => Volatile.Read(ref _result) is ConfigWriteResult r ? r : null;
        set => Volatile.Write(ref _result, value);
    }
}

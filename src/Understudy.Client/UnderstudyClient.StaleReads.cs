using System.Text.Json;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Client;

/// <summary>Queries with a chosen consistency: bounded-staleness reads go to a backup first.</summary>
public sealed partial class UnderstudyClient
{
    // How long the list of backups learned from the monitor is used before it is asked again.
    private static readonly TimeSpan BackupListLifetime = TimeSpan.FromSeconds(5);

    private readonly Lock _backupsLock = new();
    private NodeAddress[] _backups = [];
    private long _backupsFetchedAt = long.MinValue;
    private int _nextBackup;

    /// <summary>
    /// Asks the cluster's state machine a question (<see cref="IStateMachine.Query"/>) with the given consistency:
    /// <see cref="ReadConsistency.Linearizable"/> as <see cref="QueryAsync(ReadOnlyMemory{byte}, CancellationToken)"/>;
    /// <see cref="ReadConsistency.BoundedStaleness"/> (NOT linearizable) asked of a backup first, then of the
    /// primary if that backup is too far behind or cannot be reached.
    /// </summary>
    /// <exception cref="UnderstudyException">No answer within the request timeout, or refused.</exception>
    /// <exception cref="UnderstudyCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<Reply> QueryAsync(ReadOnlyMemory<byte> query, ReadConsistency consistency, CancellationToken cancellationToken = default)
    {
        if (consistency.MaxLag is not { } lag)
        {
            return await QueryAsync(query, cancellationToken).ConfigureAwait(false);
        }

        var server = consistency.Server.IsNone ? await PickBackupAsync(cancellationToken).ConfigureAwait(false) : consistency.Server;
        return await SendAsync(RequestKind.StaleRead, StaleReadPayload.Encode(lag, query.Span), null, server, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A live backup the monitor knows of, in turn; none (ask the primary) when there is none or the monitor does not say.</summary>
    private async Task<NodeAddress> PickBackupAsync(CancellationToken cancellationToken)
    {
        NodeAddress[] backups;
        lock (_backupsLock)
        {
            backups = _backups;
            if (_backupsFetchedAt != long.MinValue && TimeProvider.System.GetElapsedTime(_backupsFetchedAt) < BackupListLifetime)
            {
                return backups.Length == 0 ? NodeAddress.None : backups[(int)((uint)_nextBackup++ % (uint)backups.Length)];
            }
        }

        try
        {
            var status = await AdminAsync(AdminCommand.Status, NodeAddress.None, _options.Retry.AttemptTimeout, cancellationToken).ConfigureAwait(false);
            backups = status.Ok ? LiveBackups(status.Body.Span) : [];
        }
        catch (UnderstudyException)
        {
            // No monitor answered in time: the primary will do (the read is then linearizable, only slower to find).
            backups = [];
        }

        lock (_backupsLock)
        {
            _backups = backups;
            _backupsFetchedAt = TimeProvider.System.GetTimestamp();
            return backups.Length == 0 ? NodeAddress.None : backups[(int)((uint)_nextBackup++ % (uint)backups.Length)];
        }
    }

    /// <summary>The alive backups in the monitor's status JSON (its <c>members</c>, role <c>backup</c>, state <c>alive</c>).</summary>
    internal static NodeAddress[] LiveBackups(ReadOnlySpan<byte> statusJson)
    {
        try
        {
            var reader = new Utf8JsonReader(statusJson);
            using var document = JsonDocument.ParseValue(ref reader);
            if (!document.RootElement.TryGetProperty("members", out var members) || members.ValueKind != JsonValueKind.Array)
            {
                return [];
            }

            var backups = new List<NodeAddress>();
            foreach (var member in members.EnumerateArray())
            {
                if (member.TryGetProperty("role", out var role) && role.ValueEquals("backup")
                    && member.TryGetProperty("state", out var state) && state.ValueEquals("alive")
                    && member.TryGetProperty("address", out var address) && NodeAddress.TryParse(address.GetString(), out var parsed))
                {
                    backups.Add(parsed);
                }
            }

            return [.. backups];
        }
        catch (JsonException)
        {
            return [];
        }
    }
}

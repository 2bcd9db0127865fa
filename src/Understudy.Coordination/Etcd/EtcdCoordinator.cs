using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Coordination.Etcd;

/// <summary>
/// The monitor group coordinated by an external etcd, as Patroni uses its DCS: the configuration is one key changed
/// only by transactions, and the active monitor is whoever holds the leader key under its lease.
/// </summary>
/// <remarks>
/// <para>Keys, under <see cref="EtcdCoordinatorOptions.EffectivePrefix"/>: <c>config</c> (the <see cref="ClusterConfig"/>
/// in its wire encoding), <c>leader</c> (the active monitor's heartbeat address, held by its lease) and
/// <c>members/&lt;address&gt;</c> (one per live monitor, each held by that monitor's lease).</para>
/// <para>One background loop owns the lease, the election and the view: every <see cref="EtcdCoordinatorOptions.TimeToLive"/>/4,
/// or sooner when the watch on the prefix reports a change, it renews the lease, reads the prefix, campaigns when the
/// leader key is missing, and publishes <see cref="Leadership"/>, <see cref="Peers"/> and new configurations. The
/// watch only wakes the loop; what the loop reads is the truth, so a watch that misses events while etcd restarts
/// costs at most one tick.</para>
/// <para><see cref="LeadershipChanged"/> is also raised when <see cref="Leadership.HasQuorum"/> changes (etcd lost or
/// back), so the dashboard shows it without polling; it is not raised when only <see cref="Leadership.ConfirmedUntil"/>
/// moves on, which happens at every renewal.</para>
/// </remarks>
public sealed partial class EtcdCoordinator : IMonitorCoordinator
{
    private readonly EtcdCoordinatorOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time = TimeProvider.System;
    private readonly string _endpoints;
    private readonly string _prefix;
    private readonly ByteString _prefixKey;
    private readonly ByteString _prefixEnd;
    private readonly ByteString _configKey;
    private readonly ByteString _leaderKey;
    private readonly ByteString _memberKey;
    private readonly ByteString _selfValue;
    private readonly long _ttlSeconds;
    private readonly long _confirmTicks;
    private readonly EtcdClient _client;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _sync = new();

    // Owned by the loop (and StartAsync before the loop runs).
    private long _leaseId;
    private long _lastRenewalSent;
    private long _watchId = -1;
    private Task<long>? _watchCreation;
    private long _watchNotifications;
    private long _damagedRevision;
    private bool _reachable = true;

    // Shared with callers; written under _sync.
    private Leadership _leadership = Leadership.Unknown;
    private IReadOnlyList<MonitorPeer> _peers;
    private long _seenConfigVersion = -1;
    private long _heldLeaseId;

    private Task? _loop;
    private bool _abandoned;
    private bool _disposed;

    /// <summary>Creates the coordinator; nothing is contacted until <see cref="StartAsync"/>.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public EtcdCoordinator(EtcdCoordinatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _logger = options.Logger;
        _endpoints = string.Join(",", options.Endpoints.Select(e => e.GetLeftPart(UriPartial.Authority)));
        _prefix = options.EffectivePrefix;
        _prefixKey = ByteString.CopyFromUtf8(_prefix);
        _prefixEnd = RangeEndOf(_prefix);
        _configKey = ByteString.CopyFromUtf8(_prefix + "config");
        _leaderKey = ByteString.CopyFromUtf8(_prefix + "leader");
        _memberKey = ByteString.CopyFromUtf8(_prefix + "members/" + options.Self);
        _selfValue = ByteString.CopyFromUtf8(options.Self.ToString());
        _ttlSeconds = (long)options.TimeToLive.TotalSeconds;

        // etcd expires the lease no sooner than a TTL after it applied the last renewal, which it did after we sent
        // it: a TTL after the send, less the drift between the two clocks, nobody else can hold the leader key.
        _confirmTicks = (long)((options.TimeToLive - options.MaxClockDrift).TotalSeconds * TimeProvider.System.TimestampFrequency);
        _peers = [new MonitorPeer(options.Self, false, MonitorPeerState.Unreachable, true)];
        _client = new EtcdClient(_endpoints);
    }

    /// <summary>This monitor's heartbeat address, its name in the group.</summary>
    public NodeAddress Self => _options.Self;

    /// <summary>The key holding the configuration.</summary>
    public string ConfigKey => _prefix + "config";

    /// <summary>The election key.</summary>
    public string LeaderKey => _prefix + "leader";

    public Leadership Leadership
    {
        get
        {
            lock (_sync)
            {
                return _leadership;
            }
        }
    }

    public IReadOnlyList<MonitorPeer> Peers
    {
        get
        {
            lock (_sync)
            {
                return _peers;
            }
        }
    }

    public event Action<Leadership>? LeadershipChanged;

    public event Action<ClusterConfig>? ConfigChanged;

    /// <summary>
    /// Registers this monitor, campaigns once, and starts the loop. Waits (retrying every tick, logging that etcd
    /// cannot be reached) until etcd answers once, so <see cref="LoadAsync"/> works when it returns.
    /// </summary>
    public async ValueTask StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_loop is not null)
        {
            throw new InvalidOperationException("The etcd coordinator is already started.");
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        while (!await TryStepAsync(linked.Token).ConfigureAwait(false))
        {
            await WaitForTickAsync(linked.Token).ConfigureAwait(false);
        }

        _loop = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
    }

    /// <inheritdoc />
    /// <exception cref="InvalidDataException">The configuration key holds something that does not decode; the message says how to repair it.</exception>
    /// <exception cref="CoordinatorUnavailableException">etcd did not answer.</exception>
    public async ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (config, _) = await ReadConfigAsync(cancellationToken).ConfigureAwait(false);
        return config;
    }

    /// <inheritdoc />
    /// <exception cref="NotActiveMonitorException">This monitor is not the active one, or etcd's transaction found the
    /// leader key is no longer this monitor's (it was deposed and has not noticed yet).</exception>
    /// <exception cref="ArgumentException"><paramref name="next"/> does not raise the version, or lowers the epoch.</exception>
    /// <exception cref="CoordinatorUnavailableException">etcd did not answer; the write may or may not have committed.</exception>
    public async ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(next);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Leadership leadership;
            long leaseId;
            lock (_sync)
            {
                leadership = _leadership;
                leaseId = _heldLeaseId;
            }

            if (!leadership.IsActive)
            {
                throw new NotActiveMonitorException(leadership.Active);
            }

            var (current, modRevision) = await ReadConfigAsync(cancellationToken).ConfigureAwait(false);
            if (current.Version != expectedVersion)
            {
                _logger.EtcdConfigCasRefused(expectedVersion, current.Version);
                return new ConfigWriteResult(false, current);
            }

            if (next.Version <= current.Version)
            {
                throw new ArgumentException($"the new configuration's version {next.Version} must be above the stored {current.Version}", nameof(next));
            }

            if (next.Epoch < current.Epoch)
            {
                throw new ArgumentException($"the new configuration's epoch {next.Epoch} is below the stored {current.Epoch}: the epoch never goes back", nameof(next));
            }

            // The guard: the leader key is still the one this monitor created (its create revision is our term, and
            // it is held by our lease), and the configuration is still the one read above. A deposed monitor that has
            // not noticed yet fails the first compares, so it can never write.
            var txn = new TxnRequest();
            txn.Compare.Add(new Compare { Key = _leaderKey, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = leadership.Term });
            txn.Compare.Add(new Compare { Key = _leaderKey, Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = leaseId });
            txn.Compare.Add(new Compare { Key = _configKey, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = modRevision });
            txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = _configKey, Value = ByteString.CopyFrom(next.ToBytes()) } });
            txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = _leaderKey } });
            txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = _configKey } });
            var response = await CallAsync(
                (deadline, ct) => _client.TransactionAsync(txn, deadline: deadline, cancellationToken: ct),
                cancellationToken).ConfigureAwait(false);
            if (response.Succeeded)
            {
                lock (_sync)
                {
                    _seenConfigVersion = Math.Max(_seenConfigVersion, next.Version);
                }

                _logger.EtcdConfigStored(next, response.Header.Revision);
                return new ConfigWriteResult(true, next);
            }

            var leader = response.Responses[0].ResponseRange.Kvs.FirstOrDefault();
            if (leader is null || leader.CreateRevision != leadership.Term || leader.Lease != leaseId)
            {
                var active = leader is null ? NodeAddress.None : ParseAddress(leader.Value);
                _logger.EtcdConfigWriteDeposed(_options.Self, active);
                Wake();
                throw new NotActiveMonitorException(active);
            }

            var stored = DecodeConfig(response.Responses[1].ResponseRange.Kvs.FirstOrDefault());
            _logger.EtcdConfigCasRefused(expectedVersion, stored.Version);
            return new ConfigWriteResult(false, stored);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Stops the loop and revokes the lease, so the leader and member keys go at once and another monitor takes over without waiting a TTL.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await HaltAsync().ConfigureAwait(false);
        _disposed = true;
        if (!_abandoned && _leaseId != 0)
        {
            try
            {
                var leaseId = _leaseId;
                using var timeout = new CancellationTokenSource(_options.EffectiveRequestTimeout);
                await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseId }, deadline: Deadline(), cancellationToken: timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // The lease then expires on its own a TTL later; the next monitor just waits for it.
                _logger.EtcdUnreachable(_endpoints, $"revoking the lease at shutdown failed ({e.Message}); it expires within {_ttlSeconds} s");
            }
        }

        _client.Dispose();
        _stopping.Dispose();
        _wake.Dispose();
        _writeGate.Dispose();
    }

    /// <summary>
    /// Stops renewing, watching and campaigning at once, without revoking the lease or deleting a key: what etcd sees
    /// when the process is killed with SIGKILL or frozen. Compare-and-set still reaches etcd, as a frozen monitor's
    /// last request would. Tests use it to check that the lease, not this process's good behaviour, keeps the group safe.
    /// </summary>
    internal async Task AbandonAsync()
    {
        _abandoned = true;
        await HaltAsync().ConfigureAwait(false);
    }

    /// <summary>How many times the watch has woken the loop (tests check that followers learn by watching, not only by the ticks).</summary>
    internal long WatchNotifications => Interlocked.Read(ref _watchNotifications);

    private async Task HaltAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }

        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }

        if (_watchCreation is { } creation)
        {
            // The stopping token cancels it; if etcd acknowledged it first, it is cancelled below like any other.
            _watchCreation = null;
            try
            {
                _watchId = await creation.ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _watchId = -1;
            }
        }

        if (_watchId >= 0)
        {
            try
            {
                _client.CancelWatch(_watchId);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Cancelling a watch on a connection that is gone has nothing left to cancel.
                _logger.EtcdUnreachable(_endpoints, $"cancelling the watch failed ({e.Message})");
            }

            _watchId = -1;
        }
    }
}

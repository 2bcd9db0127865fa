using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Mvccpb;
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
public sealed class EtcdCoordinator : IMonitorCoordinator
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

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await WaitForTickAsync(cancellationToken).ConfigureAwait(false);
                await TryStepAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping: a call cut short may end as OperationCanceledException or as gRPC's Cancelled status.
        }
    }

    private async Task WaitForTickAsync(CancellationToken cancellationToken) =>
        await _wake.WaitAsync(_options.Tick, cancellationToken).ConfigureAwait(false);

    private void Wake()
    {
        try
        {
            if (_wake.CurrentCount == 0)
            {
                _wake.Release();
            }
        }
        catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
        {
            // Already woken (a watch event racing another), or shut down: nothing to do.
        }
    }

    /// <summary>One round; false (and the view marked unreachable) when etcd did not answer.</summary>
    private async Task<bool> TryStepAsync(CancellationToken cancellationToken)
    {
        try
        {
            await StepAsync(cancellationToken).ConfigureAwait(false);
            if (!_reachable)
            {
                _reachable = true;
                _logger.EtcdReachable(_endpoints);
            }

            return true;
        }
        catch (CoordinatorUnavailableException e) when (!cancellationToken.IsCancellationRequested)
        {
            if (_reachable)
            {
                _reachable = false;
                _logger.EtcdUnreachable(_endpoints, Describe(e));
            }

            PublishUnreachable();
            return false;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not OutOfMemoryException)
        {
            // A bug, not etcd: say so, and vouch for nothing until a round succeeds, as if etcd were away.
            _logger.EtcdStepFailed(e);
            PublishUnreachable();
            return false;
        }
    }

    private async Task StepAsync(CancellationToken cancellationToken)
    {
        await EnsureWatchAsync().ConfigureAwait(false);
        if (_leaseId != 0 && _time.GetTimestamp() - _lastRenewalSent >= _options.Tick.TotalSeconds * TimeProvider.System.TimestampFrequency * 0.9)
        {
            var sent = _time.GetTimestamp();
            long? ttl = null;
            await CallAsync(
                async (deadline, ct) =>
                {
                    await _client.LeaseKeepAlive(new LeaseKeepAliveRequest { ID = _leaseId }, r => ttl = r.TTL, ct).ConfigureAwait(false);
                    return true;
                },
                cancellationToken).ConfigureAwait(false);

            // No answer at all is an unreachable etcd, not a lost lease: granting a new lease then would leave the
            // old one holding the leader key for a TTL with nobody able to use it.
            if (ttl is null)
            {
                throw new CoordinatorUnavailableException($"etcd coordinator: cannot reach etcd at {_endpoints}: the lease renewal got no answer");
            }

            if (ttl <= 0)
            {
                _logger.EtcdLeaseLost(_leaseId);
                _leaseId = 0;
            }
            else
            {
                _lastRenewalSent = sent;
            }
        }

        if (_leaseId == 0)
        {
            var sent = _time.GetTimestamp();
            var grant = await CallAsync(
                (deadline, ct) => _client.LeaseGrantAsync(new LeaseGrantRequest { TTL = _ttlSeconds }, deadline: deadline, cancellationToken: ct),
                cancellationToken).ConfigureAwait(false);
            _leaseId = grant.ID;
            _lastRenewalSent = sent;
        }

        var range = await CallAsync(
            (deadline, ct) => _client.GetAsync(new RangeRequest { Key = _prefixKey, RangeEnd = _prefixEnd }, deadline: deadline, cancellationToken: ct),
            cancellationToken).ConfigureAwait(false);
        KeyValue? leader = null;
        KeyValue? config = null;
        var members = new List<NodeAddress>();
        var registered = false;
        foreach (var kv in range.Kvs)
        {
            if (kv.Key == _leaderKey)
            {
                leader = kv;
            }
            else if (kv.Key == _configKey)
            {
                config = kv;
            }
            else if (kv.Key.ToStringUtf8() is { } key && key.StartsWith(_prefix + "members/", StringComparison.Ordinal))
            {
                registered |= kv.Key == _memberKey && kv.Lease == _leaseId;
                if (NodeAddress.TryParse(key[(_prefix.Length + "members/".Length)..], out var member))
                {
                    members.Add(member);
                }
            }
        }

        if (!registered)
        {
            await CallAsync(
                (deadline, ct) => _client.PutAsync(new PutRequest { Key = _memberKey, Value = _selfValue, Lease = _leaseId }, deadline: deadline, cancellationToken: ct),
                cancellationToken).ConfigureAwait(false);
            if (!members.Contains(_options.Self))
            {
                members.Add(_options.Self);
            }
        }

        if (leader is null)
        {
            leader = await CampaignAsync(cancellationToken).ConfigureAwait(false);
        }

        Publish(leader, members, DecodeForView(config));
    }

    /// <summary>Creates the leader key with this monitor's lease if nobody holds it; returns whoever holds it after.</summary>
    private async Task<KeyValue?> CampaignAsync(CancellationToken cancellationToken)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = _leaderKey, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = _leaderKey, Value = _selfValue, Lease = _leaseId } });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = _leaderKey } });
        var response = await CallAsync(
            (deadline, ct) => _client.TransactionAsync(txn, deadline: deadline, cancellationToken: ct),
            cancellationToken).ConfigureAwait(false);
        if (!response.Succeeded)
        {
            return response.Responses[0].ResponseRange.Kvs.FirstOrDefault();
        }

        // Every write of a transaction gets the transaction's revision: that is the key's create revision, our term.
        var revision = response.Header.Revision;
        return new KeyValue { Key = _leaderKey, Value = _selfValue, Lease = _leaseId, CreateRevision = revision, ModRevision = revision, Version = 1 };
    }

    private void Publish(KeyValue? leader, List<NodeAddress> members, ClusterConfig? config)
    {
        var active = leader is null ? NodeAddress.None : ParseAddress(leader.Value);
        var isActive = leader is not null && _leaseId != 0 && leader.Lease == _leaseId && leader.Value == _selfValue;
        members.Sort();
        var peers = members
            .Select(m => new MonitorPeer(m, m == active, MonitorPeerState.Up, m == _options.Self))
            .ToArray();

        Leadership before;
        Leadership after;
        ClusterConfig? raise = null;
        lock (_sync)
        {
            before = _leadership;
            var term = Math.Max(before.Term, leader?.CreateRevision ?? 0);

            after = new Leadership(term, isActive, active, isActive ? _lastRenewalSent + _confirmTicks : 0, true);
            _leadership = after;
            _heldLeaseId = isActive ? _leaseId : 0;
            _peers = peers;
            if (config is not null && config.Version > _seenConfigVersion)
            {
                _seenConfigVersion = config.Version;
                raise = config;
            }
        }

        Announce(before, after);
        if (raise is not null)
        {
            Raise(ConfigChanged, raise, nameof(ConfigChanged));
        }
    }

    /// <summary>etcd did not answer: no quorum; this monitor stays active only until its confirmed deadline passes.</summary>
    private void PublishUnreachable()
    {
        Leadership before;
        Leadership after;
        lock (_sync)
        {
            before = _leadership;
            var stillConfirmed = before.IsActive && _time.GetTimestamp() < before.ConfirmedUntil;
            after = stillConfirmed
                ? before with { HasQuorum = false }
                : new Leadership(before.Term, false, before.IsActive ? NodeAddress.None : before.Active, 0, false);
            _leadership = after;
            if (!after.IsActive)
            {
                _heldLeaseId = 0;
            }

            var active = after.IsActive ? _options.Self : after.Active;
            _peers = [.. _peers.Select(p => p with
            {
                IsActive = !active.IsNone && p.Address == active,
                State = p.IsSelf ? p.State : MonitorPeerState.Unreachable,
            })];
        }

        Announce(before, after);
    }

    private void Announce(Leadership before, Leadership after)
    {
        if (before.Term == after.Term && before.IsActive == after.IsActive && before.Active == after.Active && before.HasQuorum == after.HasQuorum)
        {
            return;
        }

        if (after.IsActive && !before.IsActive)
        {
            _logger.EtcdBecameActive(_options.Self, after.Term, LeaderKey, _heldLeaseId);
        }
        else if (before.IsActive && !after.IsActive)
        {
            _logger.EtcdSteppedDown(_options.Self, after.Term, after.Active);
        }

        Raise(LeadershipChanged, after, nameof(LeadershipChanged));
    }

    private void Raise<T>(Action<T>? handler, T value, string name)
    {
        try
        {
            handler?.Invoke(value);
        }
        catch (Exception e)
        {
            _logger.EtcdHandlerFailed(e, name);
        }
    }

    /// <summary>
    /// Starts the watch on the prefix, without waiting for it: creating one waits for etcd's acknowledgement, which
    /// must not hold up renewals while etcd is away. One creation is in flight at a time; a failed one is retried
    /// at the next tick. Once created, the client re-establishes the watch after a reconnect by itself.
    /// </summary>
    private async Task EnsureWatchAsync()
    {
        if (_watchId >= 0)
        {
            return;
        }

        if (_watchCreation is null)
        {
            var request = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = _prefixKey, RangeEnd = _prefixEnd } };
            try
            {
                _watchCreation = _client.WatchAsync(request, (Action<WatchResponse>)(_ =>
                {
                    Interlocked.Increment(ref _watchNotifications);
                    Wake();
                }), cancellationToken: _stopping.Token);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _watchCreation = Task.FromException<long>(e);
            }

            return;
        }

        if (!_watchCreation.IsCompleted)
        {
            return;
        }

        var creation = _watchCreation;
        _watchCreation = null;
        if (creation.IsCompletedSuccessfully)
        {
            _watchId = await creation.ConfigureAwait(false);
        }
        else
        {
            // Reading the exception observes it; the ticks keep the view current until a retry succeeds.
            _ = creation.Exception;
        }
    }

    private async Task<(ClusterConfig Config, long ModRevision)> ReadConfigAsync(CancellationToken cancellationToken)
    {
        var response = await CallAsync(
            (deadline, ct) => _client.GetAsync(new RangeRequest { Key = _configKey }, deadline: deadline, cancellationToken: ct),
            cancellationToken).ConfigureAwait(false);
        var kv = response.Kvs.FirstOrDefault();
        return (DecodeConfig(kv), kv?.ModRevision ?? 0);
    }

    /// <summary>Runs one etcd call with the request timeout; an unanswered call becomes <see cref="CoordinatorUnavailableException"/>.</summary>
    private async Task<T> CallAsync<T>(Func<DateTime, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.EffectiveRequestTimeout);
        try
        {
            return await call(Deadline(), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not (OutOfMemoryException or InvalidDataException or ArgumentException))
        {
            throw new CoordinatorUnavailableException($"etcd coordinator: cannot reach etcd at {_endpoints}: {Describe(e)}", e);
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && e is not OperationCanceledException)
        {
            // gRPC reports the caller's cancellation as an RpcException with status Cancelled: callers expect the usual exception.
            throw new OperationCanceledException("the etcd request was cancelled", e, cancellationToken);
        }
    }

    private DateTime Deadline() => DateTime.UtcNow + _options.EffectiveRequestTimeout;

    /// <summary>
    /// The configuration for the view, or null when there is none or it is damaged: a damaged key is logged once per
    /// revision and never replaced by epoch 0 (<see cref="LoadAsync"/> throws until someone repairs it), and the
    /// election carries on meanwhile.
    /// </summary>
    private ClusterConfig? DecodeForView(KeyValue? kv)
    {
        if (kv is null)
        {
            return null;
        }

        try
        {
            return DecodeConfig(kv);
        }
        catch (InvalidDataException e)
        {
            if (_damagedRevision != kv.ModRevision)
            {
                _damagedRevision = kv.ModRevision;
                _logger.EtcdConfigDamaged(e.Message);
            }

            return null;
        }
    }

    private ClusterConfig DecodeConfig(KeyValue? kv)
    {
        if (kv is null)
        {
            return ClusterConfig.Initial;
        }

        try
        {
            return ClusterConfig.FromBytes(kv.Value.Span);
        }
        catch (ProtocolException e)
        {
            throw new InvalidDataException(
                $"the configuration at etcd key '{ConfigKey}' (revision {kv.ModRevision}) is damaged ({e.Message}). Refusing to carry on from epoch 0, which could elect a second primary: restore the key from a backup, or stop every server and delete it to form a new cluster.",
                e);
        }
    }

    private static NodeAddress ParseAddress(ByteString value) =>
        NodeAddress.TryParse(value.ToStringUtf8(), out var address) ? address : NodeAddress.None;

    private static string Describe(Exception e) => e switch
    {
        CoordinatorUnavailableException { InnerException: { } inner } => Describe(inner),
        OperationCanceledException => "no answer within the request timeout",
        Grpc.Core.RpcException rpc => $"{rpc.StatusCode}: {rpc.Status.Detail}",
        _ => e.Message,
    };

    /// <summary>The end of the prefix's key range: the prefix with its last byte raised by one.</summary>
    private static ByteString RangeEndOf(string prefix)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(prefix);
        bytes[^1]++;
        return ByteString.CopyFrom(bytes);
    }
}

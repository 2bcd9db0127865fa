using Etcdserverpb;
using Mvccpb;
using Understudy.Protocol;

namespace Understudy.Coordination.Etcd;

// The background loop that owns the lease, the election and the view (see the remarks on the type).
public sealed partial class EtcdCoordinator
{
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
}

using Etcdserverpb;
using Google.Protobuf;
using Mvccpb;
using Understudy.Protocol;

namespace Understudy.Coordination.Etcd;

// The etcd calls and decoding the loop and the configuration writes share: the watch, the config read, timeouts.
public sealed partial class EtcdCoordinator
{
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

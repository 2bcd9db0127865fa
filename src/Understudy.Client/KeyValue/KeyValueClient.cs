using System.Text;
using Understudy.Core.Client;
using Understudy.Core.StateMachines.KeyValue;

namespace Understudy.Client.KeyValue;

/// <summary>
/// A typed client of a cluster running the key-value store (<c>--state-machine kv</c>), over an
/// <see cref="UnderstudyClient"/> it does not own. Writes (put, delete, compare-and-set, increment) are applied once
/// even across failovers and acknowledged once every in-sync server holds them; gets are linearizable unless a
/// <see cref="ReadConsistency.BoundedStaleness"/> is asked for. Thread-safe, as the client under it.
/// </summary>
/// <remarks>
/// A result's <see cref="KeyValueResult.Status"/> says how the call ended (not found, compare-and-set mismatch, not an
/// integer...): those are answers, not failures. A call that fails or times out throws <see cref="UnderstudyException"/>
/// as the generic client does: <see cref="OutcomeKind.Unknown"/> means a write may still have been applied.
/// </remarks>
public sealed class KeyValueClient(UnderstudyClient client)
{
    /// <summary>The generic client this one sends through.</summary>
    public UnderstudyClient Client { get; } = client;

    /// <summary>The key's value, linearizably: the primary answers under its lease, after its epoch has committed.</summary>
    public Task<KeyValueResult> GetAsync(string key, CancellationToken cancellationToken = default) =>
        GetAsync(Encoding.UTF8.GetBytes(key), ReadConsistency.Linearizable, cancellationToken);

    /// <summary>The key's value; with <see cref="ReadConsistency.BoundedStaleness"/> a backup may answer (NOT linearizable).</summary>
    public Task<KeyValueResult> GetAsync(string key, ReadConsistency consistency, CancellationToken cancellationToken = default) =>
        GetAsync(Encoding.UTF8.GetBytes(key), consistency, cancellationToken);

    /// <summary>The key's value; with <see cref="ReadConsistency.BoundedStaleness"/> a backup may answer (NOT linearizable).</summary>
    public async Task<KeyValueResult> GetAsync(ReadOnlyMemory<byte> key, ReadConsistency consistency, CancellationToken cancellationToken = default)
    {
        var reply = await Client.QueryAsync(KeyValueCommands.Get(key.Span), consistency, cancellationToken).ConfigureAwait(false);
        return Decode(reply, "get");
    }

    /// <summary>Sets the key; with <paramref name="expireAfter"/> it is gone once the log's time passes the put's time plus that.</summary>
    public Task<KeyValueResult> PutAsync(string key, string value, TimeSpan? expireAfter = null, CancellationToken cancellationToken = default) =>
        PutAsync(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value), expireAfter, cancellationToken);

    /// <inheritdoc cref="PutAsync(string, string, TimeSpan?, CancellationToken)"/>
    public Task<KeyValueResult> PutAsync(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, TimeSpan? expireAfter = null, CancellationToken cancellationToken = default) =>
        ExecuteAsync(KeyValueCommands.Put(key.Span, value.Span, ExpireAfterMs(expireAfter)), "put", cancellationToken);

    /// <summary>Removes the key: <see cref="KeyValueStatus.Ok"/> when it existed, <see cref="KeyValueStatus.NotFound"/> otherwise.</summary>
    public Task<KeyValueResult> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        DeleteAsync(Encoding.UTF8.GetBytes(key), cancellationToken);

    /// <inheritdoc cref="DeleteAsync(string, CancellationToken)"/>
    public Task<KeyValueResult> DeleteAsync(ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) =>
        ExecuteAsync(KeyValueCommands.Delete(key.Span), "delete", cancellationToken);

    /// <summary>
    /// Stores <paramref name="value"/> only if the key holds <paramref name="expected"/> (null: only if the key is
    /// missing): <see cref="KeyValueStatus.Ok"/> when it swapped, <see cref="KeyValueStatus.Mismatch"/> with the value
    /// found otherwise. Applied once even when retried across a failover.
    /// </summary>
    public Task<KeyValueResult> CompareAndSetAsync(string key, string? expected, string value, CancellationToken cancellationToken = default) =>
        CompareAndSetAsync(Encoding.UTF8.GetBytes(key), expected is null ? null : Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(value), cancellationToken);

    /// <inheritdoc cref="CompareAndSetAsync(string, string?, string, CancellationToken)"/>
    public Task<KeyValueResult> CompareAndSetAsync(ReadOnlyMemory<byte> key, byte[]? expected, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
        ExecuteAsync(KeyValueCommands.CompareAndSet(key.Span, expected, value.Span), "compare-and-set", cancellationToken);

    /// <summary>
    /// Adds <paramref name="delta"/> to the key read as a decimal integer (missing counts as 0); the new value is
    /// <see cref="KeyValueResult.Number"/>. <see cref="KeyValueStatus.NotAnInteger"/> or
    /// <see cref="KeyValueStatus.Overflow"/> when it cannot, with nothing changed.
    /// </summary>
    public Task<KeyValueResult> IncrementAsync(string key, long delta = 1, CancellationToken cancellationToken = default) =>
        IncrementAsync(Encoding.UTF8.GetBytes(key), delta, cancellationToken);

    /// <inheritdoc cref="IncrementAsync(string, long, CancellationToken)"/>
    public Task<KeyValueResult> IncrementAsync(ReadOnlyMemory<byte> key, long delta = 1, CancellationToken cancellationToken = default) =>
        ExecuteAsync(KeyValueCommands.Increment(key.Span, delta), "increment", cancellationToken);

    private async Task<KeyValueResult> ExecuteAsync(byte[] command, string what, CancellationToken cancellationToken)
    {
        var reply = await Client.ExecuteAsync(command, cancellationToken).ConfigureAwait(false);
        return Decode(reply, what);
    }

    private static KeyValueResult Decode(Reply reply, string what)
    {
        KeyValueResult result;
        try
        {
            result = KeyValueCommands.DecodeResult(reply.Payload.Span);
        }
        catch (Protocol.ProtocolException e)
        {
            throw new UnderstudyException($"{what}: the server {reply.Server} answered something that is not a key-value result ({e.Message}); does the cluster run --state-machine kv?", OutcomeKind.Unknown);
        }

        return result.Status == KeyValueStatus.Malformed
            ? throw new UnderstudyException($"{what}: the server {reply.Server} could not read the request; does the cluster run --state-machine kv?", OutcomeKind.Failed)
            : result;
    }

    /// <summary>Whole milliseconds, rounded up so a short expiry never becomes none.</summary>
    private static long? ExpireAfterMs(TimeSpan? expireAfter)
    {
        if (expireAfter is not { } span)
        {
            return null;
        }

        if (span <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(expireAfter), span, "an expiry must be positive");
        }

        return (long)Math.Ceiling(span.TotalMilliseconds);
    }
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Protocol;

namespace Understudy.Coordination.Etcd;

/// <summary>How an <see cref="EtcdCoordinator"/> reaches etcd and how long its leadership lasts.</summary>
public sealed record EtcdCoordinatorOptions
{
    /// <summary>The election lease's default lifetime.</summary>
    /// <remarks>
    /// etcd lease TTLs are whole seconds, and the lease is what bounds failover: when the active monitor dies, its
    /// leader key (held by its lease) disappears only a TTL after its last renewal, so another monitor becomes
    /// active between about TTL - TTL/4 (died just before renewing) and one TTL plus etcd's expiry check (half a
    /// second on etcd 3.4) after the death: 1.5 to 2.5 s by default. 2 s keeps that short, and a
    /// renewal every <see cref="TimeToLive"/>/4 (500 ms) leaves three renewals' worth of slack before a busy
    /// moment costs the active monitor its leadership. 1 s would halve failover but leave a single slow
    /// renewal (GC pause, loaded etcd) enough to depose a healthy monitor.
    /// </remarks>
    public static readonly TimeSpan DefaultTimeToLive = TimeSpan.FromSeconds(2);

    /// <summary>The default clock drift allowed between this process's clock and etcd's over one lease.</summary>
    public static readonly TimeSpan DefaultMaxClockDrift = TimeSpan.FromMilliseconds(250);

    /// <summary>The etcd client URLs, for example <c>http://127.0.0.1:2379</c> (<c>--etcd-endpoints</c>, comma-separated there).</summary>
    public required IReadOnlyList<Uri> Endpoints { get; init; }

    /// <summary>The cluster's name: the default key prefix is <c>/understudy/&lt;name&gt;/</c>.</summary>
    public string ClusterName { get; init; } = "default";

    /// <summary>Where this cluster's keys live; null for <c>/understudy/&lt;cluster-name&gt;/</c>. Must end in '/'.</summary>
    public string? KeyPrefix { get; init; }

    /// <summary>This monitor's heartbeat address: its name in the group and the leader key's value.</summary>
    public required NodeAddress Self { get; init; }

    /// <summary>The election lease's lifetime; whole seconds, because etcd's TTLs are (see <see cref="DefaultTimeToLive"/>).</summary>
    public TimeSpan TimeToLive { get; init; } = DefaultTimeToLive;

    /// <summary>
    /// How much sooner than etcd this process may see a lease's lifetime end (clock rate difference over one TTL,
    /// and scheduling delay between timing a renewal and sending it). It is taken off every
    /// <see cref="Leadership.ConfirmedUntil"/>, so a larger value is safer and leaves less of the lease usable.
    /// </summary>
    public TimeSpan MaxClockDrift { get; init; } = DefaultMaxClockDrift;

    /// <summary>How long one etcd request may take before etcd counts as unreachable; null for half the TTL.</summary>
    public TimeSpan? RequestTimeout { get; init; }

    /// <summary>Where the coordinator logs (unreachable etcd, elections).</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>The prefix in use: <see cref="KeyPrefix"/>, or the default built from <see cref="ClusterName"/>.</summary>
    public string EffectivePrefix => KeyPrefix ?? $"/understudy/{ClusterName}/";

    /// <summary>The request timeout in use: <see cref="RequestTimeout"/>, or half the TTL.</summary>
    public TimeSpan EffectiveRequestTimeout => RequestTimeout ?? TimeToLive / 2;

    /// <summary>How often the lease is renewed and the keys re-read (a watch event wakes the loop sooner).</summary>
    internal TimeSpan Tick => TimeToLive / 4;

    /// <summary>Parses <c>--etcd-endpoints</c>: comma-separated absolute http(s) URLs.</summary>
    /// <exception cref="FormatException">An entry is not an absolute http or https URL.</exception>
    public static IReadOnlyList<Uri> ParseEndpoints(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var endpoints = new List<Uri>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                throw new FormatException($"'{part}' is not an etcd endpoint: expected a URL such as http://127.0.0.1:2379.");
            }

            endpoints.Add(uri);
        }

        return endpoints;
    }

    /// <summary>Throws when an option is out of range; called by the coordinator's constructor.</summary>
    /// <exception cref="ArgumentException">An option is missing or out of range; the message says which and why.</exception>
    public void Validate()
    {
        if (Endpoints is null || Endpoints.Count == 0)
        {
            throw new ArgumentException("At least one etcd endpoint is needed (--etcd-endpoints http://127.0.0.1:2379).", nameof(Endpoints));
        }

        foreach (var e in Endpoints)
        {
            if (e is null || !e.IsAbsoluteUri || (e.Scheme != Uri.UriSchemeHttp && e.Scheme != Uri.UriSchemeHttps))
            {
                throw new ArgumentException($"The etcd endpoint '{e}' is not an absolute http or https URL.", nameof(Endpoints));
            }
        }

        if (Self.IsNone)
        {
            throw new ArgumentException("The monitor's own heartbeat address is needed: it names this monitor in etcd.", nameof(Self));
        }

        if (string.IsNullOrWhiteSpace(ClusterName) || ClusterName.Contains('/', StringComparison.Ordinal))
        {
            throw new ArgumentException($"The cluster name '{ClusterName}' must be non-empty and without '/': it is one level of the key prefix.", nameof(ClusterName));
        }

        if (KeyPrefix is not null && (KeyPrefix.Length < 2 || !KeyPrefix.EndsWith('/')))
        {
            throw new ArgumentException($"The key prefix '{KeyPrefix}' must end in '/', so one cluster's keys never share a prefix with another's.", nameof(KeyPrefix));
        }

        if (TimeToLive < TimeSpan.FromSeconds(1) || TimeToLive.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TimeToLive), TimeToLive, "The lease TTL must be a whole number of seconds, at least 1: etcd's TTLs are whole seconds.");
        }

        if (MaxClockDrift < TimeSpan.Zero || MaxClockDrift >= TimeToLive / 2)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxClockDrift), MaxClockDrift, "The clock drift must be at least zero and below half the lease TTL, or leadership would never be confirmed long enough to use.");
        }

        if (EffectiveRequestTimeout <= TimeSpan.Zero || EffectiveRequestTimeout > TimeToLive / 2)
        {
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "The request timeout must be positive and at most half the lease TTL, so a hung request cannot outlast the lease it renews.");
        }

        ArgumentNullException.ThrowIfNull(Logger);
    }
}

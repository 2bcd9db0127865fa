namespace Understudy.Core.Client;

/// <summary>What a client does while no primary is known.</summary>
public enum NoPrimaryPolicy
{
    /// <summary>Hold requests until a primary is known or their deadline passes (the default).</summary>
    Queue,

    /// <summary>Fail requests at once while no primary is known.</summary>
    FailFast,
}

/// <summary>How a client retries. Validated at start.</summary>
public sealed record ClientOptions
{
    /// <summary>How long one call may take, retries included, before it ends with an error.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for an answer to one attempt before sending it again.</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>First retry delay after a refusal; doubles up to <see cref="MaxBackoff"/>, with full jitter.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(5);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How often to ask the monitor again while no primary is known.</summary>
    public TimeSpan MonitorRetryInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    public NoPrimaryPolicy NoPrimary { get; init; } = NoPrimaryPolicy.Queue;

    public void Validate()
    {
        if (RequestTimeout <= TimeSpan.Zero || AttemptTimeout <= TimeSpan.Zero || InitialBackoff <= TimeSpan.Zero || MaxBackoff < InitialBackoff || MonitorRetryInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("client timeouts and backoffs must be positive, and max backoff at least the initial backoff");
        }
    }
}

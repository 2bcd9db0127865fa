using System.Diagnostics;

namespace Understudy.Orchestration.Polling;

/// <summary>
/// Waiting without sleeping a fixed time: check a condition until it holds or a deadline passes. The deadline is
/// generous (it is reached only when something is wrong), and the timeout message names the phase and says what
/// was expected and what was seen. The one helper for the CLI's runners, the chaos runner, the benches and the tests.
/// </summary>
public static class Poll
{
    /// <summary>The deadline tests use unless they say otherwise: generous for a loaded CI machine.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How often a condition is checked unless the caller says otherwise.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Returns once <paramref name="condition"/> holds; throws <see cref="TimeoutException"/>
    /// "<paramref name="phase"/>: not reached within N s; <paramref name="describe"/>()" at the deadline.
    /// </summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string phase, Func<string> describe, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(describe);
        return UntilAsync(_ => Task.FromResult(condition()), timeout, phase, _ => Task.FromResult(describe()), cancellationToken);
    }

    /// <summary>As <see cref="UntilAsync(Func{bool}, TimeSpan, string, Func{string}, CancellationToken)"/>, with an asynchronous condition and description.</summary>
    public static async Task UntilAsync(Func<CancellationToken, Task<bool>> condition, TimeSpan timeout, string phase, Func<CancellationToken, Task<string>> describe, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(describe);
        var watch = Stopwatch.StartNew();
        while (!await condition(cancellationToken).ConfigureAwait(false))
        {
            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException(Message(phase, timeout, await describe(cancellationToken).ConfigureAwait(false)));
            }

            await Task.Delay(DefaultInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Probes until <paramref name="condition"/> holds for what the probe returned, and returns that; at the deadline
    /// throws <see cref="TimeoutException"/> naming the phase and describing the last value seen.
    /// </summary>
    public static async Task<T> ForAsync<T>(Func<CancellationToken, Task<T>> probe, Func<T, bool> condition, TimeSpan timeout, string phase, Func<T?, string> describe, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(describe);
        var (met, last) = await TryForCoreAsync(probe, condition, timeout, DefaultInterval, cancellationToken).ConfigureAwait(false);
        return met ? last! : throw new TimeoutException(Message(phase, timeout, describe(last)));
    }

    /// <summary>
    /// Probes every <paramref name="interval"/> until <paramref name="condition"/> holds, and returns what the probe
    /// returned then; <c>default</c> at the deadline (for callers that carry on and report the failure themselves).
    /// </summary>
    public static async Task<T?> TryForAsync<T>(Func<CancellationToken, Task<T>> probe, Func<T, bool> condition, TimeSpan timeout, TimeSpan interval, CancellationToken cancellationToken)
    {
        var (met, last) = await TryForCoreAsync(probe, condition, timeout, interval, cancellationToken).ConfigureAwait(false);
        return met ? last : default;
    }

    private static async Task<(bool Met, T? Last)> TryForCoreAsync<T>(Func<CancellationToken, Task<T>> probe, Func<T, bool> condition, TimeSpan timeout, TimeSpan interval, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(condition);
        var watch = Stopwatch.StartNew();
        T? last = default;
        while (watch.Elapsed < timeout)
        {
            last = await probe(cancellationToken).ConfigureAwait(false);
            if (condition(last))
            {
                return (true, last);
            }

            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }

        return (false, last);
    }

    private static string Message(string phase, TimeSpan timeout, string seen) =>
        $"{phase}: not reached within {timeout.TotalSeconds:0.#} s; {seen}";
}

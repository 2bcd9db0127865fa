namespace Understudy.Client;

/// <summary>Where a caller's code after an awaited call of an <see cref="UnderstudyClient"/> runs (<see cref="UnderstudyClientOptions.ResumeOn"/>).</summary>
public enum CallResumption
{
    /// <summary>On the thread pool: the thread that read the answer goes straight back to reading. Safe for any caller.</summary>
    ThreadPool,

    /// <summary>
    /// On the thread that read the answer, once the client's own lock is released: no hand-off per call, but that
    /// connection reads nothing until the caller's code returns or awaits again. Only for callers that never block
    /// after an await (no <c>.Result</c>, no <c>Wait()</c>, no long work): a load generator, a proxy. The calls those
    /// callers then make on the same server leave together, in one write, once the reader has run every caller that
    /// one read's answers resumed.
    /// </summary>
    Reader,
}

namespace Understudy.Orchestration.Bench;

/// <summary>A memory figure of one server over a soak run, in MiB: first sample, highest, last.</summary>
public sealed record SoakMemory(double Start, double Max, double End);

/// <summary>One sample of one server: seconds since load began, resident set and managed heap (MiB; heap null when /metrics did not answer).</summary>
public sealed record SoakSample(double Seconds, string Server, double RssMb, double? HeapMb);

/// <summary>
/// RSS growth of one server over the last quarter of the writes (MiB): the mean of the window's first tenth of samples
/// (<see cref="StartMb"/>) against its last tenth (<see cref="EndMb"/>), and the change in percent.
/// </summary>
public sealed record SoakRssGrowth(double FromSeconds, double ToSeconds, double StartMb, double EndMb, double Percent);

/// <summary>Something the soak bench did to the cluster, and when (seconds since load began).</summary>
public sealed record SoakEvent(double Seconds, string What);

/// <summary>What `bench soak --json` prints (and result.json in the run folder holds).</summary>
public sealed record SoakResult
{
    /// <summary>Writes the writers sent (each one once, closed loop).</summary>
    public required long Writes { get; init; }

    public required long Acknowledged { get; init; }

    /// <summary>Writes the cluster surely did not apply (it said so).</summary>
    public required long Failed { get; init; }

    /// <summary>Writes whose outcome the client never learnt (timed out): they may or may not be in the log.</summary>
    public required long Unknown { get; init; }

    /// <summary>Resident set size per server ("server1"...), from /proc/PID/status (VmRSS).</summary>
    public required IReadOnlyDictionary<string, SoakMemory> RssMb { get; init; }

    /// <summary>Managed heap per server, from its /metrics (understudy_server_managed_heap_bytes).</summary>
    public required IReadOnlyDictionary<string, SoakMemory> HeapMb { get; init; }

    /// <summary>
    /// RSS growth over the last quarter of the writes of each server not killed or started in it (see <see cref="SoakGrowth"/>):
    /// issue 9's "the last quarter grows it by less than 5 %", which the run-wide figures cannot show since the wipe falls there.
    /// </summary>
    public IReadOnlyDictionary<string, SoakRssGrowth> LastQuarterRssGrowth { get; init; } = new Dictionary<string, SoakRssGrowth>();

    /// <summary>A backup killed and restarted with its folder intact: from its start to the monitor listing it in sync again.</summary>
    public required double RestartToInSyncMs { get; init; }

    /// <summary>A backup killed, its folder wiped, restarted: from its start to in sync.</summary>
    public required double WipedCatchUpMs { get; init; }

    /// <summary>Size of the primary's data folder when the wiped backup started: what it had to copy.</summary>
    public required double WipedCatchUpMb { get; init; }

    /// <summary><see cref="WipedCatchUpMb"/> over <see cref="WipedCatchUpMs"/>.</summary>
    public required double WipedCatchUpMBps { get; init; }

    /// <summary>Acknowledged writes/s from the start of load to the first fault.</summary>
    public required double SteadyWritesPerSec { get; init; }

    /// <summary>Acknowledged writes/s clients saw while the wiped backup caught up (the writers may have finished inside that window).</summary>
    public required double CatchUpWritesPerSec { get; init; }

    /// <summary>Every server killed at once (monitor kept up) and started again: from the start to the first acknowledged write.</summary>
    public required double ClusterRestartMs { get; init; }

    public required int Lost { get; init; }

    public required int Duplicated { get; init; }

    public required string Verdict { get; init; }

    public IReadOnlyList<string> Violations { get; init; } = [];

    /// <summary>Messages read back from the final log.</summary>
    public required long LogMessages { get; init; }

    public required double Seconds { get; init; }

    public required double WritesPerSec { get; init; }

    public required int Clients { get; init; }

    public required int Payload { get; init; }

    public required string Fsync { get; init; }

    public required IReadOnlyList<SoakEvent> Events { get; init; }

    public required string LoadBefore { get; init; }

    public required string LoadAfter { get; init; }

    public string? RunFolder { get; init; }
}

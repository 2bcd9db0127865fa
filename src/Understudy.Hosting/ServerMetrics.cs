using Prometheus;
using Understudy.Protocol;

namespace Understudy.Hosting;

/// <summary>
/// A server's Prometheus metrics, in a registry of its own (several servers may share a process in tests).
/// Counters are bumped where things happen; gauges are read from the node just before each scrape.
/// </summary>
public sealed class ServerMetrics
{
    // Frames sent since the last scrape, by entry count. The loop records them here and publishes them into
    // BatchEntries on the loop at scrape time, so a scrape never reads the histogram in the middle of an update
    // (its _count and +Inf bucket would disagree, which Prometheus's format forbids).
    private long[] _pendingBatches = new long[1025];

    // ResponsesWith's series, by the status's byte value (null where no status has that value).
    private readonly Counter.Child?[] _responsesByStatus;

    public ServerMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var f = Prometheus.Metrics.WithCustomRegistry(Registry);
        Writes = f.CreateCounter("understudy_server_client_writes_total", "Client write requests received.");
        Reads = f.CreateCounter("understudy_server_client_reads_total", "Client read requests received.");
        Responses = f.CreateCounter("understudy_server_client_responses_total", "Client responses sent, by status.", new CounterConfiguration { LabelNames = ["status"] });
        _responsesByStatus = new Counter.Child?[(int)Enum.GetValues<ResponseStatus>().Max() + 1];
        foreach (var status in Enum.GetValues<ResponseStatus>())
        {
            _responsesByStatus[(int)status] = Responses.WithLabels(status.ToString().ToLowerInvariant());
        }
        FramesSent = f.CreateCounter("understudy_server_replication_frames_sent_total", "Replication frames sent to backups.");
        SnapshotTransfers = f.CreateCounter("understudy_server_snapshot_transfers_total", "Snapshot transfers to backups started, snapshots installed from the primary, and chunks or snapshots refused.", new CounterConfiguration { LabelNames = ["event"] });
        FramesReceived = f.CreateCounter("understudy_server_replication_frames_received_total", "Replication frames received from the primary.");
        AcksReceived = f.CreateCounter("understudy_server_replication_acks_received_total", "Replication acknowledgements received from backups.");
        LoopTurns = f.CreateCounter("understudy_server_loop_turns_total", "Turns of the node's loop: each runs the inputs queued (network, disk, timer) and then flushes once.");
        LoopItems = f.CreateCounter("understudy_server_loop_items_total", "Inputs the node's loop has run (each one a hand-off from a reader, the log writer or the timer).");
        BatchEntries = f.CreateHistogram("understudy_server_replication_batch_entries", "Log entries per replication frame.", new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 12) });
        ReplicationRoundTrip = f.CreateGauge("understudy_server_replication_round_trip_seconds", "Round trip of the last acknowledged frame, per backup.", new GaugeConfiguration { LabelNames = ["backup"] });
        ReplicaMatchIndex = f.CreateGauge("understudy_server_replica_match_index", "Durable index each backup holds in agreement with this primary.", new GaugeConfiguration { LabelNames = ["backup"] });
        Epoch = f.CreateGauge("understudy_server_epoch", "Highest epoch this server has seen.");
        IsPrimary = f.CreateGauge("understudy_server_is_primary", "1 while this server is the primary.");
        HasLease = f.CreateGauge("understudy_server_lease_valid", "1 while this server is primary with an unexpired lease.");
        LastIndex = f.CreateGauge("understudy_server_log_last_index", "Index of the last entry in the log.");
        CommitIndex = f.CreateGauge("understudy_server_log_commit_index", "Index of the last committed entry.");
        DurableIndex = f.CreateGauge("understudy_server_log_durable_index", "Index through which the log is on disk.");
        InSyncSize = f.CreateGauge("understudy_server_in_sync_size", "Members of the in-sync set in the configuration this server holds.");
        LogBytes = f.CreateCounter("understudy_server_log_written_bytes_total", "Bytes written to the log files since start.");
        Fsyncs = f.CreateCounter("understudy_server_fsyncs_total", "fsync calls on the log since start.");
        FsyncSeconds = f.CreateCounter("understudy_server_fsync_seconds_total", "Total time spent in fsync on the log since start.");
        LastFsyncSeconds = f.CreateGauge("understudy_server_fsync_last_seconds", "Duration of the last fsync on the log.");
        Segments = f.CreateGauge("understudy_server_log_segments", "Segment files of the log.");
        FirstIndex = f.CreateGauge("understudy_server_log_first_index", "Oldest entry still in the log (on disk); compaction moves it forward.");
        WindowEntries = f.CreateGauge("understudy_server_log_window_entries", "Entries of the log held in memory.");
        SnapshotIndex = f.CreateGauge("understudy_server_snapshot_index", "Last entry covered by the newest stored snapshot (0: none).");
        RetentionFloor = f.CreateGauge("understudy_server_retention_first_message", "First message the store still holds; earlier ones were removed by retention.");

        SlowApplies = f.CreateCounter("understudy_server_slow_applies_total", "State machine Apply calls slower than the slow-apply threshold (they hold up the node's loop).");
        SlowestApply = f.CreateGauge("understudy_server_apply_slowest_seconds", "The slowest state machine Apply above the slow-apply threshold since start (0: none).");

        // The registry is a custom one, so prometheus-net's default dotnet_* collectors are absent; the soak bench needs the heap.
        ManagedHeap = f.CreateGauge("understudy_server_managed_heap_bytes", "Bytes the garbage collector counts as allocated (GC.GetTotalMemory), read at scrape time.");
    }

    public CollectorRegistry Registry { get; }

    /// <summary>A replication frame of <paramref name="entries"/> entries was sent. On the node's loop only.</summary>
    public void RecordBatch(int entries)
    {
        if (entries >= _pendingBatches.Length)
        {
            Array.Resize(ref _pendingBatches, entries + 1);
        }

        _pendingBatches[entries]++;
    }

    /// <summary>Moves the frames recorded since the last scrape into <see cref="BatchEntries"/>. On the node's loop only.</summary>
    public void PublishBatches()
    {
        for (var entries = 0; entries < _pendingBatches.Length; entries++)
        {
            if (_pendingBatches[entries] > 0)
            {
                BatchEntries.Observe(entries, _pendingBatches[entries]);
                _pendingBatches[entries] = 0;
            }
        }
    }

    public Counter Writes { get; }

    /// <summary>Snapshot catch-up, by event: started (primary), installed and refused (backup).</summary>
    public Counter SnapshotTransfers { get; }

    public Counter Reads { get; }

    public Counter Responses { get; }

    /// <summary>
    /// <see cref="Responses"/>' series for one status. Counted on every reply, on the node's loop: the series are looked
    /// up once here rather than by a label string made (ToString, ToLowerInvariant) and hashed per reply.
    /// </summary>
    public Counter.Child ResponsesWith(ResponseStatus status)
    {
        var index = (int)status;
        var cached = (uint)index < (uint)_responsesByStatus.Length ? _responsesByStatus[index] : null;
        return cached ?? Responses.WithLabels(status.ToString().ToLowerInvariant());
    }

    public Counter FramesSent { get; }

    public Counter FramesReceived { get; }

    public Histogram BatchEntries { get; }

    public Counter AcksReceived { get; }

    /// <summary>Set from the loop's own count at each scrape.</summary>
    public Counter LoopTurns { get; }

    /// <summary>Set from the loop's own count at each scrape.</summary>
    public Counter LoopItems { get; }

    public Gauge ReplicationRoundTrip { get; }

    public Gauge ReplicaMatchIndex { get; }

    public Gauge Epoch { get; }

    public Counter SlowApplies { get; }

    public Gauge SlowestApply { get; }

    public Gauge IsPrimary { get; }

    public Gauge HasLease { get; }

    public Gauge LastIndex { get; }

    public Gauge CommitIndex { get; }

    public Gauge DurableIndex { get; }

    public Gauge InSyncSize { get; }

    public Counter LogBytes { get; }

    public Counter Fsyncs { get; }

    public Counter FsyncSeconds { get; }

    public Gauge LastFsyncSeconds { get; }

    public Gauge Segments { get; }

    public Gauge FirstIndex { get; }

    public Gauge WindowEntries { get; }

    public Gauge SnapshotIndex { get; }

    public Gauge RetentionFloor { get; }

    public Gauge ManagedHeap { get; }
}

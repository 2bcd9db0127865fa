using Prometheus;

namespace Understudy.Hosting;

/// <summary>The monitor's Prometheus metrics, in a registry of its own; gauges are refreshed before each scrape.</summary>
public sealed class MonitorMetrics
{
    public MonitorMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var f = Prometheus.Metrics.WithCustomRegistry(Registry);
        Heartbeats = f.CreateCounter("understudy_monitor_heartbeats_received_total", "Heartbeats received from servers.");
        FailuresDetected = f.CreateCounter("understudy_monitor_failures_detected_total", "Servers judged failed, by how: crash (connection reset and port refused) or timeout.", new CounterConfiguration { LabelNames = ["how"] });
        PrimaryFailures = f.CreateCounter("understudy_monitor_primary_failures_total", "Times the primary was judged failed.");
        Promotions = f.CreateCounter("understudy_monitor_promotions_total", "Backups promoted to primary.");
        PromotionSeconds = f.CreateHistogram("understudy_monitor_promotion_duration_seconds", "From detecting a primary failure to the new configuration being stored and announced.", new HistogramConfiguration { Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        ConfigWriteSeconds = f.CreateHistogram("understudy_monitor_config_write_duration_seconds", "Durable compare-and-set writes of the configuration.", new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 14) });
        Epoch = f.CreateGauge("understudy_monitor_epoch", "Current epoch of the configuration.");
        ConfigVersion = f.CreateGauge("understudy_monitor_config_version", "Current version of the configuration.");
        InSyncSize = f.CreateGauge("understudy_monitor_in_sync_size", "Members of the in-sync set (the primary included).");
        Members = f.CreateGauge("understudy_monitor_members", "Servers known, by state.", new GaugeConfiguration { LabelNames = ["state"] });
        Subscriptions = f.CreateGauge("understudy_monitor_client_subscriptions", "Clients subscribed to primary changes.");
        LeaseRemaining = f.CreateGauge("understudy_monitor_lease_remaining_seconds", "Time until the lease last granted to the primary surely expires.");
        Active = f.CreateGauge("understudy_monitor_active", "1 when this monitor is the active one of its group, else 0.");
        Term = f.CreateGauge("understudy_monitor_term", "The monitor group's leader term as this monitor knows it.");
        GroupMembers = f.CreateGauge("understudy_monitor_group_members", "Monitors of the group as this one sees them (itself included), by state: up, lagging, unreachable.", new GaugeConfiguration { LabelNames = ["state"] });
    }

    public CollectorRegistry Registry { get; }

    public Counter Heartbeats { get; }

    public Counter FailuresDetected { get; }

    public Counter PrimaryFailures { get; }

    public Counter Promotions { get; }

    public Histogram PromotionSeconds { get; }

    public Histogram ConfigWriteSeconds { get; }

    public Gauge Epoch { get; }

    public Gauge ConfigVersion { get; }

    public Gauge InSyncSize { get; }

    public Gauge Members { get; }

    public Gauge Subscriptions { get; }

    public Gauge LeaseRemaining { get; }

    public Gauge Active { get; }

    public Gauge Term { get; }

    public Gauge GroupMembers { get; }
}

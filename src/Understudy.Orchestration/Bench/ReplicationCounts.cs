using System.Globalization;

namespace Understudy.Orchestration.Bench;

/// <summary>
/// One server's replication and loop counters over the measured window, per second (from its /metrics before and
/// after). They say how many puts share a frame and how many loop turns each put costs, which CPU alone does not.
/// </summary>
public sealed record ServerCounts(
    string Server,
    bool Primary,
    double FramesSentPerSec,
    double EntriesPerFrame,
    double FramesReceivedPerSec,
    double AcksReceivedPerSec,
    double LoopTurnsPerSec,
    double LoopItemsPerSec);

/// <summary>Reads the counters <see cref="ServerCounts"/> is made of from a server's /metrics.</summary>
internal static class ReplicationCounters
{
    private static readonly string[] Names =
    [
        "understudy_server_replication_frames_sent_total",
        "understudy_server_replication_batch_entries_sum",
        "understudy_server_replication_batch_entries_count",
        "understudy_server_replication_frames_received_total",
        "understudy_server_replication_acks_received_total",
        "understudy_server_loop_turns_total",
        "understudy_server_loop_items_total",
        "understudy_server_is_primary",
    ];

    /// <summary>The counters by name, or null when the server did not answer (it is then left out of the counts).</summary>
    public static async Task<Dictionary<string, double>?> ScrapeAsync(HttpClient http, string host, int port, CancellationToken cancellationToken)
    {
        try
        {
            var text = await http.GetStringAsync(new Uri($"http://{host}:{port}/metrics"), cancellationToken).ConfigureAwait(false);
            var values = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var line in text.Split('\n'))
            {
                var space = line.IndexOf(' ', StringComparison.Ordinal);
                if (space > 0 && Array.IndexOf(Names, line[..space]) >= 0
                    && double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
                {
                    values[line[..space]] = value;
                }
            }

            return values;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>What happened between the two scrapes, per second of <paramref name="seconds"/>.</summary>
    public static ServerCounts Between(string server, Dictionary<string, double> before, Dictionary<string, double> after, double seconds)
    {
        double Rate(string name) => Math.Round((after.GetValueOrDefault(name) - before.GetValueOrDefault(name)) / seconds, 0);
        var frames = after.GetValueOrDefault(Names[2]) - before.GetValueOrDefault(Names[2]);
        var entries = after.GetValueOrDefault(Names[1]) - before.GetValueOrDefault(Names[1]);
        return new ServerCounts(
            server,
            after.GetValueOrDefault(Names[7]) > 0,
            Rate(Names[0]),
            frames > 0 ? Math.Round(entries / frames, 2) : 0,
            Rate(Names[3]),
            Rate(Names[4]),
            Rate(Names[5]),
            Rate(Names[6]));
    }
}

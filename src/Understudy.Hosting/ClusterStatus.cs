using System.Text.Json;
using System.Text.Json.Serialization;
using Understudy.Coordination;
using Understudy.Core.Monitor;
using Understudy.Protocol;

namespace Understudy.Hosting;

/// <summary>One server as the monitor sees it (for `status`, `/cluster` and the dashboard).</summary>
public sealed record MemberStatus
{
    public required string Address { get; init; }

    /// <summary>primary, backup or down.</summary>
    public required string Role { get; init; }

    /// <summary>alive, suspected, down or unknown.</summary>
    public required string State { get; init; }

    public required bool InSync { get; init; }

    public required long Epoch { get; init; }

    public required long LogEnd { get; init; }

    public required long CommitIndex { get; init; }

    /// <summary>Entries behind the primary's log end (from the last heartbeats).</summary>
    public required long Lag { get; init; }

    public double? HeartbeatAgeMs { get; init; }

    public required int Pid { get; init; }

    public required int HttpPort { get; init; }

    public required int Priority { get; init; }

    public required bool Durable { get; init; }

    public string? DownReason { get; init; }
}

/// <summary>The cluster as the monitor sees it.</summary>
public sealed record ClusterStatus
{
    public required long Epoch { get; init; }

    public required long Version { get; init; }

    public string? Primary { get; init; }

    public required string Phase { get; init; }

    public required IReadOnlyList<string> InSync { get; init; }

    public required double LeaseRemainingMs { get; init; }

    public required int Subscribers { get; init; }

    public required IReadOnlyList<MemberStatus> Members { get; init; }

    public required DateTimeOffset At { get; init; }

    /// <summary>The monitor group as the answering monitor sees it (absent from monitors that predate groups).</summary>
    public MonitorGroupStatus? Monitors { get; init; }

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ClusterStatus FromJson(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<ClusterStatus>(json, Json) ?? throw new JsonException("empty cluster status");

    /// <summary>Reads the monitor's state. Call on the monitor's event loop.</summary>
    public static ClusterStatus From(MonitorNode monitor, TimeProvider time)
    {
        var config = monitor.Config;
        var health = monitor.Members.ToDictionary(m => m.Address);
        var primaryEnd = config.Primary.IsNone || !health.TryGetValue(config.Primary, out var p) || p.LastHeartbeat is null
            ? 0
            : p.LastHeartbeat.Value.LastIndex;
        var addresses = config.Members.Select(m => m.Address).Concat(health.Keys).Distinct().Order();
        var members = new List<MemberStatus>();
        foreach (var address in addresses)
        {
            health.TryGetValue(address, out var h);
            var hb = h?.LastHeartbeat;
            var state = h?.Liveness switch
            {
                Liveness.Alive => "alive",
                Liveness.Suspected => "suspected",
                Liveness.Down => "down",
                _ => "unknown",
            };
            var role = state != "alive" ? "down" : hb?.Role == ServerRole.Primary && address == config.Primary ? "primary" : "backup";
            members.Add(new MemberStatus
            {
                Address = address.ToString(),
                Role = role,
                State = state,
                InSync = config.IsInSync(address),
                Epoch = hb?.Epoch ?? 0,
                LogEnd = hb?.LastIndex ?? 0,
                CommitIndex = hb?.CommitIndex ?? 0,
                Lag = hb is null ? 0 : Math.Max(0, primaryEnd - hb.Value.LastIndex),
                HeartbeatAgeMs = monitor.HeartbeatAgeMs(address) is { } age ? Math.Round(age, 1) : null,
                Pid = hb?.Pid ?? 0,
                HttpPort = hb?.HttpPort ?? 0,
                Priority = config.IsMember(address) ? config.PriorityOf(address) : hb?.Priority ?? address.Port,
                Durable = hb?.Durable ?? false,
                DownReason = string.IsNullOrEmpty(h?.DownReason) ? null : h!.DownReason,
            });
        }

        return new ClusterStatus
        {
            Epoch = config.Epoch,
            Version = config.Version,
            Primary = config.Primary.IsNone ? null : config.Primary.ToString(),
            Phase = monitor.Phase.ToString(),
            InSync = [.. config.InSync.Select(a => a.ToString())],
            LeaseRemainingMs = Math.Round(monitor.LeaseRemainingMs, 1),
            Subscribers = monitor.SubscriberCount,
            Members = members,
            At = time.GetUtcNow(),
        };
    }
}

/// <summary>One monitor of the group (for `/cluster` and the dashboard).</summary>
/// <param name="Address">Its heartbeat address, which names it.</param>
/// <param name="Active">Whether it is the active monitor.</param>
/// <param name="State">up, lagging or unreachable, as the answering monitor sees it.</param>
/// <param name="Self">Whether it is the answering monitor.</param>
public sealed record MonitorMemberStatus(string Address, bool Active, string State, bool Self);

/// <summary>The monitor group as one of its members sees it.</summary>
public sealed record MonitorGroupStatus
{
    /// <summary>file, raft or etcd.</summary>
    public required string Coordinator { get; init; }

    /// <summary>The answering monitor's heartbeat address.</summary>
    public required string Self { get; init; }

    /// <summary>The active monitor's heartbeat address, or null when none is known.</summary>
    public string? Active { get; init; }

    public required bool IsActive { get; init; }

    public required long Term { get; init; }

    public required bool HasQuorum { get; init; }

    public required IReadOnlyList<MonitorMemberStatus> Members { get; init; }

    /// <summary>Reads a coordinator's view; safe from any thread.</summary>
    public static MonitorGroupStatus From(CoordinatorKind coordinator, NodeAddress self, Leadership leadership, IReadOnlyList<MonitorPeer> peers) => new()
    {
        Coordinator = coordinator.ToString().ToLowerInvariant(),
        Self = self.ToString(),
        Active = leadership.Active.IsNone ? null : leadership.Active.ToString(),
        IsActive = leadership.IsActive,
        Term = leadership.Term,
        HasQuorum = leadership.HasQuorum,
        Members = [.. peers.OrderBy(p => p.Address).Select(p => new MonitorMemberStatus(p.Address.ToString(), p.IsActive, StateName(p.State), p.IsSelf))],
    };

    public static string StateName(MonitorPeerState state) => state switch
    {
        MonitorPeerState.Up => "up",
        MonitorPeerState.Lagging => "lagging",
        _ => "unreachable",
    };

    /// <summary>Why /health answers 503, or null when this monitor reaches a quorum.</summary>
    public string? QuorumProblem() => HasQuorum
        ? null
        : $"this monitor ({Self}) does not reach a quorum of its {Members.Count} monitors (unreachable: {string.Join(", ", Members.Where(m => m.State == "unreachable" && !m.Self).Select(m => m.Address).DefaultIfEmpty("none known"))}); it grants no lease and cannot change the configuration";
}

/// <summary>A monitor event as JSON (for `/events`, the dashboard and `understudy status`).</summary>
public sealed record EventView(long Sequence, DateTimeOffset At, string Kind, string? Member, long Epoch, string Detail, double? ElapsedMs)
{
    public static EventView From(MonitorEvent e) =>
        new(e.Sequence, e.At, e.Kind.ToString(), e.Member.IsNone ? null : e.Member.ToString(), e.Epoch, e.Detail, e.ElapsedMs is { } ms ? Math.Round(ms, 2) : null);
}

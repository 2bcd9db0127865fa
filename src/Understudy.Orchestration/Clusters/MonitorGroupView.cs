using System.Text.Json;
using Understudy.Protocol;

namespace Understudy.Orchestration.Clusters;

/// <summary>One monitor of the group as the answering monitor sees it: heartbeat address, active or not, up/lagging/unreachable.</summary>
public sealed record MonitorMemberView(string Address, bool Active, string State, bool Self);

/// <summary>
/// The monitor group as one of its members reports it in its status (`monitors` in the status JSON and `/cluster`).
/// Read from the JSON rather than the hosting types so that a status from a monitor that predates groups (no
/// `monitors` at all) still reads, as a group of one.
/// </summary>
public sealed record MonitorGroupView(string Coordinator, string? Self, string? Active, long Term, bool HasQuorum, IReadOnlyList<MonitorMemberView> Members)
{
    /// <summary>A group of one that predates groups: it is its own active monitor.</summary>
    public static MonitorGroupView Alone(NodeAddress heartbeat) =>
        new("file", heartbeat.ToString(), heartbeat.ToString(), 1, true, [new MonitorMemberView(heartbeat.ToString(), true, "up", true)]);

    /// <summary>The `monitors` object of a status body; null when there is none or it does not read.</summary>
    public static MonitorGroupView? FromStatusJson(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var doc = JsonDocument.ParseValue(ref reader);
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("monitors", out var group) && group.ValueKind == JsonValueKind.Object
                ? Read(group)
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static MonitorGroupView Read(JsonElement group)
    {
        var members = new List<MonitorMemberView>();
        if (group.TryGetProperty("members", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in list.EnumerateArray())
            {
                members.Add(new MonitorMemberView(Text(m, "address") ?? "?", Bool(m, "active"), Text(m, "state") ?? "unknown", Bool(m, "self")));
            }
        }

        var term = group.TryGetProperty("term", out var t) && t.TryGetInt64(out var value) ? value : 0;
        return new MonitorGroupView(Text(group, "coordinator") ?? "unknown", Text(group, "self"), Text(group, "active"), term, Bool(group, "hasQuorum"), members);
    }

    private static string? Text(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool Bool(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;
}

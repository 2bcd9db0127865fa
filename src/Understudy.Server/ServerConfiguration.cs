using System.Globalization;
using Microsoft.Extensions.Configuration;
using Understudy.Hosting;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Server;

/// <summary>
/// Reads a server's options from configuration (appsettings.json, environment variables such as
/// <c>Understudy__Server__Port</c>), by the names <c>understudy server</c>'s flags use: <c>Host</c>, <c>Port</c>,
/// <c>Advertise</c> (host:port), <c>Monitor</c> (host:port[,host:port...]), <c>Data</c>, <c>Fsync</c>
/// (always|batch|never), <c>HttpHost</c>, <c>HttpPort</c>, <c>MinInSync</c>, <c>Priority</c>, <c>HeartbeatMs</c>,
/// <c>SnapshotEvery</c>, <c>CatchUpMaxMbps</c> (MiB/s; 0: unlimited), <c>RehearsePromotion</c> (true|false). A key that is absent keeps the default; one that does not parse is refused in one line naming it.
/// </summary>
public static class ServerConfiguration
{
    public static ServerHostOptions Read(IConfiguration section, ServerHostOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(defaults);
        var listen = new NodeAddress(section["Host"] ?? defaults.Listen.Host, Int(section, "Port") ?? defaults.Listen.Port);
        var protocol = defaults.Protocol with
        {
            MinInSync = Int(section, "MinInSync") ?? defaults.Protocol.MinInSync,
            Priority = Int(section, "Priority") ?? defaults.Protocol.Priority,
            HeartbeatInterval = Int(section, "HeartbeatMs") is { } ms ? TimeSpan.FromMilliseconds(ms) : defaults.Protocol.HeartbeatInterval,
            SnapshotEveryEntries = Int(section, "SnapshotEvery") ?? defaults.Protocol.SnapshotEveryEntries,
            CatchUpMaxBytesPerSecond = Int(section, "CatchUpMaxMbps") is { } mbps ? mbps * (1L << 20) : defaults.Protocol.CatchUpMaxBytesPerSecond,
        };
        return defaults with
        {
            Listen = listen,
            Advertise = section["Advertise"] is { Length: > 0 } advertise ? Address(advertise, "Advertise") : defaults.Advertise,
            Monitors = section["Monitor"] is { Length: > 0 } monitors
                ? monitors.Split(',', StringSplitOptions.TrimEntries).Select(m => Address(m, "Monitor")).ToArray()
                : defaults.Monitors,
            DataDirectory = section["Data"] ?? defaults.DataDirectory,
            Fsync = section["Fsync"] is { Length: > 0 } fsync
                ? Enum.TryParse<FsyncPolicy>(fsync, ignoreCase: true, out var policy) && Enum.IsDefined(policy)
                    ? policy
                    : throw new ArgumentException($"{Key(section, "Fsync")} is '{fsync}': expected always, batch or never")
                : defaults.Fsync,
            HttpHost = section["HttpHost"] ?? defaults.HttpHost,
            HttpPort = Int(section, "HttpPort") ?? defaults.HttpPort,
            RehearsePromotion = section["RehearsePromotion"] is { Length: > 0 } rehearse
                ? bool.TryParse(rehearse, out var on) ? on : throw new ArgumentException($"{Key(section, "RehearsePromotion")} is '{rehearse}': expected true or false")
                : defaults.RehearsePromotion,
            Protocol = protocol,
        };
    }

    private static int? Int(IConfiguration section, string key) =>
        section[key] is not { Length: > 0 } text ? null
        : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value
        : throw new ArgumentException($"{Key(section, key)} is '{text}': expected a whole number");

    private static NodeAddress Address(string text, string key) =>
        NodeAddress.TryParse(text, out var address) ? address : throw new ArgumentException($"{key} is '{text}': expected host:port");

    private static string Key(IConfiguration section, string key) => section is IConfigurationSection named ? $"{named.Path}:{key}" : key;
}

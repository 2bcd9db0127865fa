using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Understudy.Protocol;

namespace Understudy.Storage;

/// <summary>
/// <c>cluster.json</c> as operators see it:
/// <code>
/// {
///   "format": 1,
///   "epoch": 3,
///   "version": 17,
///   "primary": "127.0.0.1:8090",
///   "inSync": [ "127.0.0.1:8089", "127.0.0.1:8090" ],
///   "members": [ { "address": "127.0.0.1:8088", "priority": 8088 }, ... ],
///   "checksum": "crc32c:1a2b3c4d"
/// }
/// </code>
/// The checksum is CRC-32C over the configuration's binary encoding (<see cref="ClusterConfig.ToBytes"/>),
/// recomputed from the parsed fields on load, so any change to a value (a flipped bit, a hand edit) is
/// caught rather than trusted.
/// </summary>
internal sealed class ConfigurationFile
{
    public const int CurrentFormat = 1;

    private const string ChecksumPrefix = "crc32c:";

    public required int Format { get; init; }

    public required long Epoch { get; init; }

    public required long Version { get; init; }

    /// <summary><c>host:port</c>, or null when there is no primary.</summary>
    public string? Primary { get; init; }

    public required string[] InSync { get; init; }

    public required MemberEntry[] Members { get; init; }

    public required string Checksum { get; init; }

    public static byte[] Serialize(ClusterConfig config)
    {
        var file = new ConfigurationFile
        {
            Format = CurrentFormat,
            Epoch = config.Epoch,
            Version = config.Version,
            Primary = config.Primary.IsNone ? null : config.Primary.ToString(),
            InSync = [.. config.InSync.Select(a => a.ToString())],
            Members = [.. config.Members.Select(m => new MemberEntry { Address = m.Address.ToString(), Priority = m.Priority })],
            Checksum = ChecksumOf(config),
        };
        return JsonSerializer.SerializeToUtf8Bytes(file, ConfigurationJsonContext.Default.ConfigurationFile);
    }

    /// <summary>Parses and verifies; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static ClusterConfig Deserialize(ReadOnlySpan<byte> json)
    {
        ConfigurationFile? file;
        try
        {
            file = JsonSerializer.Deserialize(json, ConfigurationJsonContext.Default.ConfigurationFile);
        }
        catch (JsonException e)
        {
            throw new FormatException($"not valid configuration JSON ({e.Message.ReplaceLineEndings(" ")})", e);
        }

        if (file is null)
        {
            throw new FormatException("the file holds JSON null");
        }

        if (file.Format != CurrentFormat)
        {
            throw new FormatException($"format {file.Format} is not the format {CurrentFormat} this version reads");
        }

        if (file.Epoch < 0 || file.Version < 0)
        {
            throw new FormatException($"negative epoch ({file.Epoch}) or version ({file.Version})");
        }

        var config = new ClusterConfig
        {
            Epoch = file.Epoch,
            Version = file.Version,
            Primary = file.Primary is null ? NodeAddress.None : ParseAddress(file.Primary, "primary"),
            InSync = [.. file.InSync.Select(a => ParseAddress(a, "inSync"))],
            Members = [.. file.Members.Select(m => new MemberInfo(ParseAddress(m.Address, "members"), m.Priority))],
        };

        var expected = ChecksumOf(config);
        if (!string.Equals(file.Checksum, expected, StringComparison.Ordinal))
        {
            throw new FormatException($"checksum {file.Checksum} does not match the contents ({expected})");
        }

        return config;
    }

    private static string ChecksumOf(ClusterConfig config) =>
        ChecksumPrefix + Crc32C.Compute(config.ToBytes()).ToString("x8", CultureInfo.InvariantCulture);

    private static NodeAddress ParseAddress(string text, string field) =>
        NodeAddress.TryParse(text, out var address) ? address : throw new FormatException($"'{text}' in {field} is not host:port");
}

/// <summary>One member in <c>cluster.json</c>.</summary>
internal sealed class MemberEntry
{
    public required string Address { get; init; }

    public required int Priority { get; init; }
}

/// <summary>Source-generated (reflection-free, trimming-safe) JSON for <see cref="ConfigurationFile"/>.</summary>
[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    RespectNullableAnnotations = true)]
[JsonSerializable(typeof(ConfigurationFile))]
internal sealed partial class ConfigurationJsonContext : JsonSerializerContext;


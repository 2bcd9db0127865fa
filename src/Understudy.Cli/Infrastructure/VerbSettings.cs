using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Understudy.Protocol;

namespace Understudy.Cli.Infrastructure;

/// <summary>
/// A verb's settings, layered as .NET configuration: a JSON settings file (--settings), then
/// UNDERSTUDY_SECTION__KEY environment variables, then flags given on the command line (which win).
/// Each getter validates and names the flag and variable in its error.
/// </summary>
internal sealed class VerbSettings
{
    private readonly IConfiguration _configuration;
    private readonly string _section;

    private VerbSettings(IConfiguration configuration, string section)
    {
        _configuration = configuration;
        _section = section;
    }

    public static Option<string?> SettingsFileOption() => new("--settings") { Description = "A JSON settings file (keys as in the flags, under \"Server\", \"Monitor\" or \"Client\")." };

    public static VerbSettings Load(ParseResult parse, string section, Option<string?> settingsFile, params (Option Option, string Key)[] flags)
    {
        var builder = new ConfigurationBuilder();
        if (parse.GetValue(settingsFile) is { Length: > 0 } file)
        {
            if (!File.Exists(file))
            {
                throw new UsageException($"settings file '{file}' does not exist: check the path given to --settings");
            }

            builder.AddJsonFile(Path.GetFullPath(file), optional: false);
        }

        builder.AddEnvironmentVariables("UNDERSTUDY_");
        var given = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (option, key) in flags)
        {
            var result = parse.GetResult(option);
            if (result is { Implicit: false })
            {
                var value = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "true";
                given[$"{section}:{key}"] = value;
            }
        }

        builder.AddInMemoryCollection(given);
        try
        {
            return new VerbSettings(builder.Build(), section);
        }
        catch (InvalidDataException e)
        {
            throw new UsageException($"settings file is not valid JSON: {e.Message}");
        }
        catch (FormatException e)
        {
            throw new UsageException($"settings file is not valid JSON: {e.Message}");
        }
    }

    private string? Raw(string key) => _configuration[$"{_section}:{key}"];

    private string Where(string key, string flag) => $"{flag} (or UNDERSTUDY_{_section.ToUpperInvariant()}__{key.ToUpperInvariant()})";

    public bool Has(string key) => Raw(key) is not null;

    public string Text(string key, string fallback) => Raw(key) is { Length: > 0 } v ? v : fallback;

    public int Int(string key, int fallback, string flag, int min = int.MinValue, int max = int.MaxValue)
    {
        var raw = Raw(key);
        if (raw is null)
        {
            return fallback;
        }

        if (!int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new UsageException($"{Where(key, flag)} is '{raw}': expected a whole number from {min} to {max}");
        }

        return value;
    }

    public double Number(string key, double fallback, string flag, double min, double max)
    {
        var raw = Raw(key);
        if (raw is null)
        {
            return fallback;
        }

        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new UsageException($"{Where(key, flag)} is '{raw}': expected a number from {min} to {max}");
        }

        return value;
    }

    public bool Switch(string key, bool fallback, string flag)
    {
        var raw = Raw(key);
        if (raw is null)
        {
            return fallback;
        }

        return bool.TryParse(raw, out var value) ? value : throw new UsageException($"{Where(key, flag)} is '{raw}': expected true or false");
    }

    public TimeSpan Millis(string key, TimeSpan fallback, string flag, int min = 1, int max = 3_600_000) =>
        Raw(key) is null ? fallback : TimeSpan.FromMilliseconds(Int(key, 0, flag, min, max));

    public NodeAddress Address(string key, NodeAddress fallback, string flag)
    {
        var raw = Raw(key);
        if (raw is null)
        {
            return fallback;
        }

        if (!NodeAddress.TryParse(raw, out var address))
        {
            throw new UsageException($"{Where(key, flag)} is '{raw}': expected host:port, for example 127.0.0.1:9000");
        }

        return address;
    }

    public T Choice<T>(string key, T fallback, string flag)
        where T : struct, Enum
    {
        var raw = Raw(key);
        if (raw is null)
        {
            return fallback;
        }

        if (!Enum.TryParse<T>(raw, ignoreCase: true, out var value) || !Enum.IsDefined(value) || int.TryParse(raw, out _))
        {
            throw new UsageException($"{Where(key, flag)} is '{raw}': expected one of {string.Join(", ", Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}");
        }

        return value;
    }

    /// <summary>The cluster key: hex in UNDERSTUDY_CLUSTER__KEY, or the first line of a key file.</summary>
    public ReadOnlyMemory<byte> ClusterKey(string? keyFile)
    {
        var file = keyFile ?? _configuration["Cluster:KeyFile"];
        string? text = _configuration["Cluster:Key"];
        if (!string.IsNullOrEmpty(file))
        {
            if (!File.Exists(file))
            {
                throw new UsageException($"cluster key file '{file}' does not exist: create one with `openssl rand -hex 32 > {file}` and give every member the same file");
            }

            text = File.ReadLines(file).FirstOrDefault()?.Trim();
        }

        if (string.IsNullOrEmpty(text))
        {
            return ReadOnlyMemory<byte>.Empty;
        }

        try
        {
            var key = Convert.FromHexString(text);
            if (key.Length < 16)
            {
                throw new UsageException($"the cluster key has {key.Length} bytes; use at least 16 (32 hex digits), e.g. `openssl rand -hex 32`");
            }

            return key;
        }
        catch (FormatException)
        {
            throw new UsageException("the cluster key must be hex digits (e.g. from `openssl rand -hex 32`)");
        }
    }
}

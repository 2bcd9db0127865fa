using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Understudy.OperatorTests;

/// <summary>One sample line: name, labels, value.</summary>
internal sealed record PromSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string LabelKey(params string[] except) =>
        string.Join(",", Labels.Where(l => !except.Contains(l.Key)).OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"));
}

/// <summary>A metric family: its TYPE, HELP and samples.</summary>
internal sealed record PromFamily(string Name, string Type, string? Help, List<PromSample> Samples);

/// <summary>
/// A strict parser of the Prometheus text exposition format (0.0.4): HELP and TYPE lines, metric and label name
/// syntax, quoted and escaped label values, float values (NaN, +Inf, -Inf), each family's samples together after its
/// TYPE, no duplicate series, counters not negative, and histograms whole: buckets with le labels rising, counts
/// never falling, a +Inf bucket equal to _count, and a _sum, for every label set. Throws FormatException with the
/// line number on anything else.
/// </summary>
internal static partial class PrometheusText
{
    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    private static readonly string[] Types = ["counter", "gauge", "histogram", "summary", "untyped"];

    public static Dictionary<string, PromFamily> Parse(string text)
    {
        if (text.Length > 0 && !text.EndsWith('\n'))
        {
            throw new FormatException("the exposition does not end with a newline");
        }

        var families = new Dictionary<string, PromFamily>(StringComparer.Ordinal);
        var series = new HashSet<string>(StringComparer.Ordinal);
        var closed = new HashSet<string>(StringComparer.Ordinal);
        PromFamily? current = null;
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length - 1; i++)
        {
            var line = lines[i];
            var n = i + 1;
            if (line.Length == 0)
            {
                continue;
            }

            if (line.StartsWith('#'))
            {
                var parts = line.Split(' ', 4);
                if (parts.Length >= 3 && parts[0] == "#" && parts[1] is "HELP" or "TYPE")
                {
                    var name = parts[2];
                    if (!MetricName().IsMatch(name))
                    {
                        throw new FormatException($"line {n}: bad metric name '{name}'");
                    }

                    var family = Family(families, closed, ref current, name, n);
                    if (parts[1] == "TYPE")
                    {
                        var type = parts.Length == 4 ? parts[3] : string.Empty;
                        if (!Types.Contains(type))
                        {
                            throw new FormatException($"line {n}: unknown type '{type}' for {name}");
                        }

                        if (family.Type != "untyped" || family.Samples.Count > 0)
                        {
                            throw new FormatException($"line {n}: TYPE of {name} given twice or after its samples");
                        }

                        families[name] = current = family with { Type = type };
                    }
                    else
                    {
                        if (family.Help is not null)
                        {
                            throw new FormatException($"line {n}: HELP of {name} given twice");
                        }

                        families[name] = current = family with { Help = parts.Length == 4 ? Unescape(parts[3], n, help: true) : string.Empty };
                    }
                }

                continue;
            }

            var sample = ParseSample(line, n);
            var owner = OwnerOf(sample.Name, families);
            var target = Family(families, closed, ref current, owner, n);
            var allowed = target.Type switch
            {
                "histogram" => new[] { owner + "_bucket", owner + "_sum", owner + "_count" },
                "summary" => [owner, owner + "_sum", owner + "_count"],
                _ => [owner],
            };
            if (!allowed.Contains(sample.Name))
            {
                throw new FormatException($"line {n}: sample {sample.Name} does not belong to {target.Type} {owner}");
            }

            if (!series.Add(sample.Name + "{" + sample.LabelKey() + "}"))
            {
                throw new FormatException($"line {n}: duplicate series {sample.Name}{{{sample.LabelKey()}}}");
            }

            if (target.Type == "counter" && (sample.Value < 0 || double.IsNaN(sample.Value)))
            {
                throw new FormatException($"line {n}: counter {sample.Name} is {sample.Value}");
            }

            target.Samples.Add(sample);
        }

        foreach (var f in families.Values.Where(f => f.Type == "histogram"))
        {
            CheckHistogram(f);
        }

        return families;
    }

    private static PromFamily Family(Dictionary<string, PromFamily> families, HashSet<string> closed, ref PromFamily? current, string name, int line)
    {
        if (current is not null && current.Name != name)
        {
            closed.Add(current.Name);
        }

        if (closed.Contains(name))
        {
            throw new FormatException($"line {line}: {name} appears again after other metrics (a family's lines must be together)");
        }

        if (!families.TryGetValue(name, out var family))
        {
            family = new PromFamily(name, "untyped", null, []);
            families[name] = family;
        }

        current = family;
        return family;
    }

    /// <summary>The family a sample belongs to: itself, or the histogram/summary whose suffix it carries.</summary>
    private static string OwnerOf(string name, Dictionary<string, PromFamily> families)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal) && families.TryGetValue(name[..^suffix.Length], out var f) && f.Type is "histogram" or "summary")
            {
                return f.Name;
            }
        }

        return name;
    }

    private static PromSample ParseSample(string line, int n)
    {
        var i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ')
        {
            i++;
        }

        var name = line[..i];
        if (!MetricName().IsMatch(name))
        {
            throw new FormatException($"line {n}: bad metric name '{name}'");
        }

        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                if (i < line.Length && line[i] == '}')
                {
                    i++;
                    break;
                }

                var start = i;
                while (i < line.Length && line[i] != '=')
                {
                    i++;
                }

                var label = line[start..i];
                if (!LabelName().IsMatch(label) || label.StartsWith("__", StringComparison.Ordinal))
                {
                    throw new FormatException($"line {n}: bad label name '{label}'");
                }

                if (i + 1 >= line.Length || line[i + 1] != '"')
                {
                    throw new FormatException($"line {n}: label {label} has no quoted value");
                }

                i += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length)
                    {
                        throw new FormatException($"line {n}: unterminated value of label {label}");
                    }

                    var c = line[i++];
                    if (c == '"')
                    {
                        break;
                    }

                    if (c == '\\')
                    {
                        if (i >= line.Length)
                        {
                            throw new FormatException($"line {n}: dangling escape in label {label}");
                        }

                        value.Append(line[i++] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            var other => throw new FormatException($"line {n}: bad escape \\{other} in label {label}"),
                        });
                    }
                    else
                    {
                        value.Append(c);
                    }
                }

                if (!labels.TryAdd(label, value.ToString()))
                {
                    throw new FormatException($"line {n}: label {label} given twice");
                }

                if (i < line.Length && line[i] == ',')
                {
                    i++;
                }
                else if (i >= line.Length || line[i] != '}')
                {
                    throw new FormatException($"line {n}: expected ',' or '}}' after label {label}");
                }
            }
        }

        if (i >= line.Length || line[i] != ' ')
        {
            throw new FormatException($"line {n}: no value after {name}");
        }

        var rest = line[(i + 1)..].Split(' ');
        if (rest.Length is < 1 or > 2)
        {
            throw new FormatException($"line {n}: expected a value and an optional timestamp, got '{line[(i + 1)..]}'");
        }

        var number = ParseValue(rest[0], n);
        if (rest.Length == 2 && !long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
        {
            throw new FormatException($"line {n}: bad timestamp '{rest[1]}'");
        }

        return new PromSample(name, labels, number);
    }

    public static double ParseValue(string text, int n) => text switch
    {
        "NaN" => double.NaN,
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        _ when double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && !text.Contains(',', StringComparison.Ordinal) => v,
        _ => throw new FormatException($"line {n}: bad value '{text}'"),
    };

    private static string Unescape(string text, int n, bool help)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] != '\\')
            {
                sb.Append(text[i]);
                continue;
            }

            if (++i >= text.Length)
            {
                throw new FormatException($"line {n}: dangling escape");
            }

            sb.Append(text[i] switch
            {
                '\\' => '\\',
                'n' => '\n',
                '"' when !help => '"',
                var other => throw new FormatException($"line {n}: bad escape \\{other}"),
            });
        }

        return sb.ToString();
    }

    private static void CheckHistogram(PromFamily f)
    {
        var groups = f.Samples.GroupBy(s => s.LabelKey("le")).ToList();
        if (groups.Count == 0)
        {
            throw new FormatException($"histogram {f.Name} has no samples");
        }

        foreach (var g in groups)
        {
            var buckets = g.Where(s => s.Name == f.Name + "_bucket").ToList();
            if (buckets.Count == 0 || buckets.Any(b => !b.Labels.ContainsKey("le")))
            {
                throw new FormatException($"histogram {f.Name}{{{g.Key}}}: no buckets, or a bucket without le");
            }

            var ordered = buckets.Select(b => (Le: ParseValue(b.Labels["le"], 0), b.Value)).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                if (ordered[i].Le <= ordered[i - 1].Le)
                {
                    throw new FormatException($"histogram {f.Name}{{{g.Key}}}: bucket le={ordered[i].Le} follows le={ordered[i - 1].Le}");
                }

                if (ordered[i].Value < ordered[i - 1].Value)
                {
                    throw new FormatException($"histogram {f.Name}{{{g.Key}}}: bucket le={ordered[i].Le} holds {ordered[i].Value}, fewer than le={ordered[i - 1].Le} ({ordered[i - 1].Value})");
                }
            }

            if (!double.IsPositiveInfinity(ordered[^1].Le))
            {
                throw new FormatException($"histogram {f.Name}{{{g.Key}}}: the last bucket is not le=\"+Inf\"");
            }

            var count = g.SingleOrDefault(s => s.Name == f.Name + "_count") ?? throw new FormatException($"histogram {f.Name}{{{g.Key}}}: no _count");
            _ = g.SingleOrDefault(s => s.Name == f.Name + "_sum") ?? throw new FormatException($"histogram {f.Name}{{{g.Key}}}: no _sum");
            if (count.Value != ordered[^1].Value)
            {
                throw new FormatException($"histogram {f.Name}{{{g.Key}}}: _count {count.Value} differs from the +Inf bucket {ordered[^1].Value}");
            }
        }
    }
}

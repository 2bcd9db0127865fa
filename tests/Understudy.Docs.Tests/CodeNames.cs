using System.Reflection;
using System.Text.RegularExpressions;

namespace Understudy.Docs.Tests;

/// <summary>
/// What the documentation names in code: inline code spans that look like a type, a member, a field or a source
/// path, and the types and members a C# example uses. Everything else in backticks (flags, commands, JSON) is prose.
/// </summary>
internal static partial class CodeNames
{
    /// <summary>`Type`, `Type.Member`, `Type.Member(Arg)`, `Namespace.Type`: at least one lower-case letter, so
    /// environment variables and acronyms are not taken for code.</summary>
    [GeneratedRegex(@"^(?<name>[A-Z][A-Za-z0-9]*(?:\.[A-Z][A-Za-z0-9]*)*)(?:\((?<arg>[A-Za-z0-9]*)\))?$")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"^_[a-z][A-Za-z0-9]*$")]
    private static partial Regex Field();

    [GeneratedRegex(@"^(src|tests|benchmarks|docs|scripts)/[^\s]*$|^[A-Z][A-Za-z]*/[A-Za-z/]*\.cs$")]
    private static partial Regex SourcePath();

    [GeneratedRegex(@"`([^`\n]+)`")]
    private static partial Regex InlineCode();

    [GeneratedRegex(@"```csharp\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();

    [GeneratedRegex(@"\bnew\s+(?<type>[A-Z][A-Za-z0-9]*)|(?<owner>\b[A-Z][A-Za-z0-9]*)?\.(?<member>[A-Z][A-Za-z0-9]*)\b")]
    private static partial Regex CSharpUse();

    public static IEnumerable<string> Spans(string markdown)
    {
        var prose = CSharpBlock().Replace(markdown, string.Empty);
        prose = Regex.Replace(prose, "```.*?```", string.Empty, RegexOptions.Singleline);
        return InlineCode().Matches(prose).Select(m => m.Groups[1].Value.Trim());
    }

    public static IEnumerable<string> CSharpUses(string markdown) =>
        CSharpBlock().Matches(markdown)
            .SelectMany(block => CSharpUse().Matches(block.Groups[1].Value))
            .Select(m => m.Groups["type"].Success ? m.Groups["type"].Value
                : m.Groups["owner"].Success ? $"{m.Groups["owner"].Value}.{m.Groups["member"].Value}"
                : m.Groups["member"].Value);

    public static bool IsIdentifier(string span, out string name, out string? argument)
    {
        var m = Identifier().Match(span);
        name = m.Groups["name"].Value;
        argument = m.Groups["arg"].Success ? m.Groups["arg"].Value : null;
        return m.Success && name.Length > 1 && name.Any(char.IsLower);
    }

    public static bool IsField(string span) => Field().IsMatch(span);

    public static bool IsSourcePath(string span) => SourcePath().IsMatch(span) && !span.Contains('…', StringComparison.Ordinal);
}

/// <summary>The types of every Understudy library, and of the platform parts the docs name (TimeProvider, Random, Console, ILogger).</summary>
internal sealed class CodeIndex
{
    private const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static readonly Type[] Platform = [typeof(TimeProvider), typeof(Random), typeof(Console), typeof(Microsoft.Extensions.Logging.ILogger), typeof(BitConverter)];

    private static readonly Type[] Generic = [typeof(Microsoft.Extensions.Hosting.Host), typeof(Microsoft.Extensions.Hosting.HostApplicationBuilder), typeof(Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions)];

    private readonly List<Type> _types;
    private readonly ILookup<string, Type> _bySimpleName;

    public CodeIndex(IEnumerable<Assembly> assemblies)
    {
        // The generic host's types too: the README's server example is a HostApplicationBuilder program.
        _types = [.. assemblies.SelectMany(a => a.GetTypes()).Where(t => !t.Name.Contains('<', StringComparison.Ordinal)), .. Generic];
        _bySimpleName = _types
            .Concat(Platform)
            .ToLookup(t => StripArity(t.Name), StringComparer.Ordinal);
    }

    /// <summary>True when <paramref name="name"/> is a type, a member of one, or `Type.Member` (nested types too).</summary>
    public bool Exists(string name, string? argumentType)
    {
        var parts = name.Split('.');
        if (parts.Length == 1)
        {
            return (argumentType is null && _bySimpleName.Contains(name)) || MembersNamed(_types, name, argumentType).Any();
        }

        // Namespace-qualified type, or Type.Member, or Outer.Nested.Member.
        if (_types.Any(t => t.FullName == name))
        {
            return true;
        }

        var owners = _bySimpleName[parts[0]].ToList();
        if (parts.Length == 2 && owners.Any(o => Platform.Contains(o) || Generic.Contains(o)))
        {
            return owners.Any(o => o.GetMember(parts[1]).Length > 0);
        }

        for (var i = 1; i < parts.Length - 1 && owners.Count > 0; i++)
        {
            owners = [.. owners.SelectMany(o => o.GetNestedTypes(Everything)).Where(n => StripArity(n.Name) == parts[i])];
        }

        var last = parts[^1];
        return owners.Any(o => o.GetNestedTypes(Everything).Any(n => StripArity(n.Name) == last) && argumentType is null)
            || MembersNamed(owners, last, argumentType).Any();
    }

    public bool FieldExists(string name) =>
        _types.Any(t => t.GetField(name, Everything) is not null);

    private static IEnumerable<MemberInfo> MembersNamed(IEnumerable<Type> owners, string member, string? argumentType) =>
        owners
            .SelectMany(o => o.GetMember(member, Everything))
            .Where(m => argumentType is null || (m is MethodBase method && method.GetParameters().Any(p => StripArity(p.ParameterType.Name.TrimEnd('&')) == argumentType)));

    private static string StripArity(string name) => name.Split('`')[0];
}

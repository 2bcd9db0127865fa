using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;
using System.Text.RegularExpressions;

namespace Understudy.Cli.Infrastructure;

/// <summary>
/// The one way every verb reports a mistake in the command: one `error:` line in our words saying what was wrong
/// and how to fix it, then the usage line of that verb (not the whole help page), and exit code 2
/// (<see cref="ExitCodes.Usage"/>). Parse errors from System.CommandLine are rewritten here; a verb's own checks
/// throw <see cref="UsageException"/>, which ends up here too.
/// </summary>
internal static partial class UsageErrors
{
    /// <summary>Prints the error and the usage line of <paramref name="command"/>; returns exit code 2.</summary>
    public static int Report(string message, Command command, Option? option = null)
    {
        Console.Error.WriteLine($"error: {OneLine(message)}");
        Console.Error.WriteLine(UsageLine(command, option));
        return ExitCodes.Usage;
    }

    /// <summary>Reports the most telling of the parse errors (an unknown word explains the rest).</summary>
    public static int Report(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized command or argument", StringComparison.Ordinal))
            ?? parse.Errors.FirstOrDefault(e => !e.Message.StartsWith("Required command was not provided", StringComparison.Ordinal))
            ?? parse.Errors[0];
        var (message, option) = Describe(error, command);
        return Report(message, command, option);
    }

    /// <summary>`usage: understudy VERB ARGS [options]`, naming the option at fault, and where the full list is.</summary>
    public static string UsageLine(Command command, Option? option = null)
    {
        var path = Path(command);
        var sb = new StringBuilder("usage: understudy");
        if (path.Length > 0)
        {
            sb.Append(' ').Append(path);
        }

        foreach (var argument in command.Arguments.Where(a => !a.Hidden))
        {
            sb.Append(" <").Append(argument.HelpName ?? argument.Name).Append('>');
        }

        var verbs = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
        if (verbs.Count > 0)
        {
            sb.Append(command.Action is null ? " " : " [").Append(verbs.Count <= 6 ? string.Join('|', verbs) : "<verb>").Append(command.Action is null ? string.Empty : "]");
        }

        if (option is not null)
        {
            sb.Append(' ').Append(option.Name);
            if (option.ValueType != typeof(bool))
            {
                sb.Append(" <").Append(ValueLabel(option)).Append('>');
            }
        }

        sb.Append(" [options]");
        sb.Append(path.Length == 0 ? "   (understudy --help lists the verbs)" : $"   (understudy {path} --help lists every option)");
        return sb.ToString();
    }

    private static string Path(Command command)
    {
        var names = new List<string>();
        for (Symbol? s = command; s is Command c && c.Parents.Any(); s = c.Parents.FirstOrDefault())
        {
            names.Insert(0, c.Name);
        }

        return string.Join(' ', names);
    }

    private static (string Message, Option? Option) Describe(ParseError error, Command command)
    {
        var text = error.Message;
        var option = error.SymbolResult is OptionResult o ? o.Option : error.SymbolResult is ArgumentResult { Parent: OptionResult po } ? po.Option : null;
        var argument = error.SymbolResult is ArgumentResult { Parent: not OptionResult } ar ? ar.Argument : null;
        var quoted = Quoted().Matches(text).Select(m => m.Groups[1].Value).ToList();
        var path = Path(command);
        var who = path.Length == 0 ? "understudy" : $"understudy {path}";

        if (text.StartsWith("Cannot parse argument", StringComparison.Ordinal) && quoted.Count >= 2)
        {
            var name = option?.Name ?? quoted[1];
            var type = option?.ValueType ?? argument?.ValueType ?? typeof(string);
            return ($"{name} is '{quoted[0]}': expected {Expected(type)}", option);
        }

        if (text.StartsWith("Argument '", StringComparison.Ordinal) && text.Contains("not recognized", StringComparison.Ordinal) && quoted.Count >= 1)
        {
            var name = option?.Name ?? (argument is null ? "the value" : $"<{argument.HelpName ?? argument.Name}>");
            return ($"{name} is '{quoted[0]}': expected one of {string.Join(", ", quoted.Skip(1))}", option);
        }

        if (text.StartsWith("Unrecognized command or argument", StringComparison.Ordinal) && quoted.Count >= 1)
        {
            var word = quoted[0];
            if (word.StartsWith('-'))
            {
                var near = Nearest(word, command.Options.Where(x => !x.Hidden).Select(x => x.Name));
                return ($"{who} has no option {word}{(near is null ? string.Empty : $" (did you mean {near}?)")}", null);
            }

            var verbs = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
            if (verbs.Count > 0)
            {
                var near = Nearest(word, verbs);
                return ($"'{word}' is not a verb of {who}{(near is null ? string.Empty : $" (did you mean {near}?)")}: the verbs are {string.Join(", ", verbs)}", null);
            }

            return ($"{who} takes no extra value '{word}': remove it, or put it after the option it belongs to", null);
        }

        if (text.StartsWith("Required command was not provided", StringComparison.Ordinal))
        {
            var verbs = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name);
            return ($"{who} needs a verb: one of {string.Join(", ", verbs)}", null);
        }

        if (text.StartsWith("Required argument missing for option", StringComparison.Ordinal))
        {
            var name = option?.Name ?? quoted.FirstOrDefault() ?? "the option";
            return ($"{name} needs a value ({(option is null ? "see --help" : Expected(option.ValueType))})", option);
        }

        if (text.StartsWith("Required argument missing for command", StringComparison.Ordinal))
        {
            var missing = command.Arguments.FirstOrDefault();
            var what = missing is null ? "an argument" : $"its <{missing.HelpName ?? missing.Name}> argument{(missing.Description is { Length: > 0 } d ? $" ({TrimPeriod(d)})" : string.Empty)}";
            return ($"{who} needs {what}", null);
        }

        if (text.Contains("expects a single argument", StringComparison.Ordinal) || text.Contains("Option '", StringComparison.Ordinal) && text.Contains("argument", StringComparison.Ordinal))
        {
            return ($"{option?.Name ?? quoted.FirstOrDefault() ?? "an option"} was given more than once or with too many values: give it one value", option);
        }

        return (TypeName().Replace(text, "a value"), option);
    }

    private static string ValueLabel(Option option)
    {
        if (option.HelpName is { Length: > 0 } help)
        {
            return help;
        }

        if (option.ValueType == typeof(string) && option.GetCompletions(System.CommandLine.Completions.CompletionContext.Empty).Select(c => c.Label).ToList() is { Count: > 0 } choices)
        {
            return string.Join('|', choices);
        }

        var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
        return type == typeof(int) || type == typeof(long) ? "N" : type == typeof(double) ? "number" : option.Name.TrimStart('-');
    }

    private static string Expected(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(int) || type == typeof(long) || type == typeof(short))
        {
            return "a whole number";
        }

        if (type == typeof(double) || type == typeof(float) || type == typeof(decimal))
        {
            return "a number, for example 2.5";
        }

        return type == typeof(bool) ? "true or false" : "a value (see --help)";
    }

    private static string? Nearest(string word, IEnumerable<string> candidates)
    {
        var bare = word.TrimStart('-');
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            var d = Distance(bare, c.TrimStart('-'));
            if (d < bestDistance)
            {
                (best, bestDistance) = (c, d);
            }
        }

        return bestDistance <= Math.Max(2, bare.Length / 3) ? best : null;
    }

    private static int Distance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var previous = row[0];
            row[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var current = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), previous + (char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1));
                previous = current;
            }
        }

        return row[b.Length];
    }

    private static string TrimPeriod(string text) => text.TrimEnd('.');

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();

    [GeneratedRegex("'([^']*)'")]
    private static partial Regex Quoted();

    [GeneratedRegex(@"System\.[\w`\[\]\.]+")]
    private static partial Regex TypeName();
}

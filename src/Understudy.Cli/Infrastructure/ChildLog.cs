namespace Understudy.Cli.Infrastructure;

/// <summary>Reads a child's log file for the line that says why it stopped: its own `error:` or `understudy:` line.</summary>
internal static class ChildLog
{
    public static string LastErrorLine(string path)
    {
        List<string> lines;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            lines = [.. reader.ReadToEnd().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0)];
        }
        catch (IOException)
        {
            return "(its log could not be read)";
        }
        catch (UnauthorizedAccessException)
        {
            return "(its log could not be read)";
        }

        for (var i = lines.Count - 1; i >= 0; i--)
        {
            var line = lines[i].Trim();
            if (line.StartsWith("error:", StringComparison.Ordinal))
            {
                return line["error:".Length..].Trim();
            }

            if (line.StartsWith("understudy", StringComparison.Ordinal))
            {
                return line;
            }
        }

        for (var i = lines.Count - 1; i >= 0; i--)
        {
            var at = lines[i].IndexOf(" fail: ", StringComparison.Ordinal) is var f and >= 0 ? f : lines[i].IndexOf(" crit: ", StringComparison.Ordinal);
            if (at >= 0)
            {
                var text = lines[i][(at + 7)..];
                var cut = text.IndexOf(" ---> ", StringComparison.Ordinal) is var c and > 0 ? c : text.IndexOf("    at ", StringComparison.Ordinal);
                return cut > 0 ? text[..cut] : text.Length > 300 ? text[..300] : text;
            }
        }

        return lines.Count > 0 ? lines[^1].Trim() : "(its log is empty)";
    }
}

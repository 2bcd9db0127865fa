namespace Understudy.Cli.Infrastructure;

/// <summary>
/// Checks a command for a running `up` (typed at its prompt or sent by `understudy kill N` and friends) before it
/// runs: a target that names no server is a mistake in the command, answered with an `error:` line that makes the
/// sending verb exit 2.
/// </summary>
internal static class ControlLine
{
    public const string ErrorPrefix = "error: ";

    /// <summary>Null when the command can run; else what is wrong with it and what to type instead.</summary>
    public static string? Problem(string line, int servers, int monitors = 1)
    {
        var words = line.Trim().ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0)
        {
            return null;
        }

        var range = servers == 1 ? "1" : $"1 to {servers}";
        switch (words[0])
        {
            case "kill" or "restart" or "pause" or "resume":
                var monitorRange = monitors == 1 ? "1" : $"1 to {monitors}";
                if (words.Length == 3 && words[1] == "monitor")
                {
                    // `kill monitor N` and friends: monitor N of the group (`kill monitor` alone means monitor 1).
                    return IsServer(words[2], monitors)
                        ? null
                        : $"{words[0]} monitor {words[2]}: there is no monitor '{words[2]}'; use a monitor number {monitorRange}";
                }

                if (words.Length != 2)
                {
                    return $"{words[0]} takes one target: a server number ({range}), `monitor` or `monitor N` ({monitorRange}), e.g. `{words[0]} 1`";
                }

                return words[1] == "monitor" || IsServer(words[1], servers)
                    ? null
                    : $"{words[0]} {words[1]}: there is no server '{words[1]}'; use a server number {range}, or `monitor N` ({monitorRange})";
            case "stop":
                if (words.Length != 2)
                {
                    return $"stop takes one target: primary, backup1, backup2, all, or a server number {range}";
                }

                return words[1] is "primary" or "backup1" or "backup2" or "all" || IsServer(words[1], servers)
                    ? null
                    : $"stop {words[1]}: expected primary, backup1, backup2, all, or a server number {range}";
            default:
                return null;
        }
    }

    private static bool IsServer(string word, int servers) =>
        int.TryParse(word, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= servers;
}

using System.Text.Json;

namespace Understudy.Cli.Infrastructure;

/// <summary>How operator verbs report a refusal: one `error:` line, or a JSON object with --json.</summary>
internal static class CommandOutput
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Prints the failure and returns exit code 1.</summary>
    public static int Fail(bool json, string message)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new { ok = false, error = message }, Json));
        }
        else
        {
            Console.Error.WriteLine($"error: {message}");
        }

        return 1;
    }
}

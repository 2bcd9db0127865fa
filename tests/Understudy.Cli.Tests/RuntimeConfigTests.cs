using System.Text.Json;

namespace Understudy.Cli.Tests;

/// <summary>
/// What the `understudy` executable asks of the .NET runtime, read from the runtimeconfig.json built beside it: the
/// settings every server, monitor and bench process runs with.
/// </summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void The_gen0_budget_is_capped_at_16_MiB()
    {
        // Uncapped, the budget follows the CPU's largest cache: 80 MiB of young garbage in every server's resident set
        // on the benchmark machine (docs/BENCHMARKS.md, "Round 19, memory through the soak").
        var path = Path.ChangeExtension(Cli.Dll, ".runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.True(properties.TryGetProperty("System.GC.Gen0MaxBudget", out var budget), $"{path} sets no System.GC.Gen0MaxBudget");
        var bytes = budget.ValueKind == JsonValueKind.String ? long.Parse(budget.GetString()!, System.Globalization.CultureInfo.InvariantCulture) : budget.GetInt64();
        Assert.InRange(bytes, 1, 16L * 1024 * 1024);

        // Workstation concurrent GC, as before: the cap is for that collector.
        Assert.False(properties.TryGetProperty("System.GC.Server", out var server) && server.GetBoolean(), $"{path} turns on server GC");
    }
}

using Understudy.Orchestration.Processes;

namespace Understudy.IntegrationTests;

/// <summary>
/// A monitor child is started without the JIT's instrumented tier, a server child with the runtime's defaults, and an
/// operator's own setting wins (<see cref="VerbRuntime"/>; docs/BENCHMARKS.md, "Monitor failover, round 21").
/// </summary>
public sealed class VerbRuntimeTests
{
    private static readonly string[] MonitorArguments = ["monitor", "--port", "1", "--data", "unused"];

    [Fact]
    public void A_monitor_runs_without_the_instrumented_tier_and_a_server_with_the_defaults()
    {
        Assert.Equal([new KeyValuePair<string, string>(VerbRuntime.TieredPgo, "0")], VerbRuntime.For("monitor", _ => null));
        Assert.Empty(VerbRuntime.For("server", _ => null));
        Assert.Empty(VerbRuntime.For("bench", _ => null));
        Assert.Empty(VerbRuntime.For(null, _ => null));
    }

    [Fact]
    public void An_operators_own_setting_wins()
    {
        Assert.Empty(VerbRuntime.For("monitor", name => name == VerbRuntime.TieredPgo ? "1" : null));

        // An empty value is no setting.
        Assert.Single(VerbRuntime.For("monitor", name => name == VerbRuntime.TieredPgo ? string.Empty : null));
    }

    [Fact]
    public void The_launcher_sets_it_for_a_monitor_child_with_or_without_a_prefix()
    {
        // The test host's own environment is the operator's: when it sets the variable, children inherit that instead.
        var expected = Environment.GetEnvironmentVariable(VerbRuntime.TieredPgo) is { Length: > 0 } own ? own : "0";

        var plain = CliLauncher.StartInfo(MonitorArguments);
        Assert.Equal(expected, plain.Environment.TryGetValue(VerbRuntime.TieredPgo, out var v) ? v : null);

        // `ip netns exec NAME ...` execs the command, which inherits the prefix's environment.
        var wrapped = CliLauncher.StartInfo(MonitorArguments, ["env"]);
        Assert.Equal(expected, wrapped.Environment.TryGetValue(VerbRuntime.TieredPgo, out var w) ? w : null);

        var server = CliLauncher.StartInfo(["server", "--port", "1"]);
        Assert.Equal(Environment.GetEnvironmentVariable(VerbRuntime.TieredPgo),
            server.Environment.TryGetValue(VerbRuntime.TieredPgo, out var s) ? s : null);
    }
}

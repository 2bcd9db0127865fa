using Understudy.Orchestration.Processes;

namespace Understudy.IntegrationTests;

/// <summary>
/// A monitor child is started with thread-pool workers that do not spin before they sleep, a server child with the
/// runtime's defaults, and an operator's own setting wins (<see cref="VerbRuntime"/>; docs/BENCHMARKS.md, "Monitor
/// failover, round 22: the group's CPU").
/// </summary>
public sealed class VerbRuntimeTests
{
    private static readonly string[] MonitorArguments = ["monitor", "--port", "1", "--data", "unused"];

    [Fact]
    public void A_monitors_idle_workers_sleep_without_spinning_and_a_server_keeps_the_defaults()
    {
        Assert.Equal([new KeyValuePair<string, string>(VerbRuntime.SpinLimit, "0")], VerbRuntime.For("monitor", _ => null));
        Assert.Empty(VerbRuntime.For("server", _ => null));
        Assert.Empty(VerbRuntime.For("bench", _ => null));
        Assert.Empty(VerbRuntime.For(null, _ => null));
    }

    [Fact]
    public void An_operators_own_setting_wins()
    {
        Assert.Empty(VerbRuntime.For("monitor", name => name == VerbRuntime.SpinLimit ? "1" : null));

        // An empty value is no setting.
        Assert.Single(VerbRuntime.For("monitor", name => name == VerbRuntime.SpinLimit ? string.Empty : null));
    }

    [Fact]
    public void The_launcher_sets_it_for_a_monitor_child_with_or_without_a_prefix()
    {
        // The test host's own environment is the operator's: when it sets the variable, children inherit that instead.
        var expected = Environment.GetEnvironmentVariable(VerbRuntime.SpinLimit) is { Length: > 0 } own ? own : "0";

        var plain = CliLauncher.StartInfo(MonitorArguments);
        Assert.Equal(expected, plain.Environment.TryGetValue(VerbRuntime.SpinLimit, out var v) ? v : null);

        // `ip netns exec NAME ...` execs the command, which inherits the prefix's environment.
        var wrapped = CliLauncher.StartInfo(MonitorArguments, ["env"]);
        Assert.Equal(expected, wrapped.Environment.TryGetValue(VerbRuntime.SpinLimit, out var w) ? w : null);

        var server = CliLauncher.StartInfo(["server", "--port", "1"]);
        Assert.Equal(Environment.GetEnvironmentVariable(VerbRuntime.SpinLimit),
            server.Environment.TryGetValue(VerbRuntime.SpinLimit, out var s) ? s : null);
    }
}

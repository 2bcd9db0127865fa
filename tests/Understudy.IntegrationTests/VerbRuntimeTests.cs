using Understudy.Orchestration.Processes;

namespace Understudy.IntegrationTests;

/// <summary>
/// A monitor child is started with thread-pool workers that do not spin before they sleep and with methods compiled
/// again only after 4096 calls, a server child with the runtime's defaults, and an operator's own setting wins
/// (<see cref="VerbRuntime"/>; docs/BENCHMARKS.md, "Monitor failover, round 22: the group's CPU" and "round 23: the
/// monitors' start").
/// </summary>
public sealed class VerbRuntimeTests
{
    private static readonly string[] MonitorArguments = ["monitor", "--port", "1", "--data", "unused"];

    [Fact]
    public void A_monitors_idle_workers_sleep_without_spinning_its_methods_tier_up_late_and_a_server_keeps_the_defaults()
    {
        Assert.Equal(
            [new KeyValuePair<string, string>(VerbRuntime.SpinLimit, "0"), new KeyValuePair<string, string>(VerbRuntime.CallCountThreshold, "1000")],
            VerbRuntime.For("monitor", _ => null));
        Assert.Empty(VerbRuntime.For("server", _ => null));
        Assert.Empty(VerbRuntime.For("bench", _ => null));
        Assert.Empty(VerbRuntime.For(null, _ => null));
    }

    [Fact]
    public void An_operators_own_setting_wins()
    {
        Assert.Equal([VerbRuntime.CallCountThreshold], VerbRuntime.For("monitor", name => name == VerbRuntime.SpinLimit ? "1" : null).Select(s => s.Key));
        Assert.Equal([VerbRuntime.SpinLimit], VerbRuntime.For("monitor", name => name == VerbRuntime.CallCountThreshold ? "1e" : null).Select(s => s.Key));

        // An empty value is no setting.
        Assert.Equal(2, VerbRuntime.For("monitor", name => name == VerbRuntime.SpinLimit ? string.Empty : null).Count());
    }

    [Theory]
    [InlineData(VerbRuntime.SpinLimit, "0")]
    [InlineData(VerbRuntime.CallCountThreshold, "1000")]
    public void The_launcher_sets_it_for_a_monitor_child_with_or_without_a_prefix(string variable, string value)
    {
        // The test host's own environment is the operator's: when it sets the variable, children inherit that instead.
        var expected = Environment.GetEnvironmentVariable(variable) is { Length: > 0 } own ? own : value;

        var plain = CliLauncher.StartInfo(MonitorArguments);
        Assert.Equal(expected, plain.Environment.TryGetValue(variable, out var v) ? v : null);

        // `ip netns exec NAME ...` execs the command, which inherits the prefix's environment.
        var wrapped = CliLauncher.StartInfo(MonitorArguments, ["env"]);
        Assert.Equal(expected, wrapped.Environment.TryGetValue(variable, out var w) ? w : null);

        var server = CliLauncher.StartInfo(["server", "--port", "1"]);
        Assert.Equal(Environment.GetEnvironmentVariable(variable), server.Environment.TryGetValue(variable, out var s) ? s : null);
    }
}

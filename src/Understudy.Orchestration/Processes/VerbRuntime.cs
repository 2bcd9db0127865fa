using System.Diagnostics;

namespace Understudy.Orchestration.Processes;

/// <summary>
/// Runtime settings a child `understudy` process is started with because of the verb it runs. The runtime reads
/// them before Main, so the parent that starts the child sets them in the child's environment (the `understudy`
/// script does the same for a verb run by hand). An operator's own setting, in this process's environment and so
/// inherited by every child, wins.
/// </summary>
/// <remarks>
/// <para><b>The monitor: tiering without the instrumented tier.</b> A monitor's hot paths run once per 5 ms tick,
/// 50 ms heartbeat or Raft round, so they cross the JIT's call-count thresholds slowly, and with dynamic PGO each is
/// compiled three times (quick, instrumented, optimised): half a minute after start 40–47 % of a monitor's CPU was
/// still the JIT (docs/BENCHMARKS.md, "Monitor failover, round 20: the cost of a group"). Three monitors share two
/// cores with the servers, so that CPU competes with a failover. Without PGO a hot method is compiled twice; the
/// monitor's own code is a tenth of its CPU, so the profile-guided code it loses is worth little (measured in
/// "Monitor failover, round 21"). Servers and benches keep PGO: their hot paths run at rate.</para>
/// </remarks>
public static class VerbRuntime
{
    /// <summary>The runtime's switch for dynamic profile-guided optimisation (the instrumented tier).</summary>
    public const string TieredPgo = "DOTNET_TieredPGO";

    private static readonly (string Verb, string Variable, string Value)[] Settings =
    [
        ("monitor", TieredPgo, "0"),
    ];

    /// <summary>The settings for <paramref name="verb"/> that the operator has not set: name and value.</summary>
    public static IEnumerable<KeyValuePair<string, string>> For(string? verb, Func<string, string?> operatorSetting)
    {
        ArgumentNullException.ThrowIfNull(operatorSetting);
        foreach (var (v, variable, value) in Settings)
        {
            if (string.Equals(v, verb, StringComparison.Ordinal) && operatorSetting(variable) is not { Length: > 0 })
            {
                yield return new KeyValuePair<string, string>(variable, value);
            }
        }
    }

    /// <summary>Sets in <paramref name="info"/> what <paramref name="verb"/> runs with, unless this process's environment sets it.</summary>
    public static void Apply(ProcessStartInfo info, string? verb)
    {
        ArgumentNullException.ThrowIfNull(info);
        foreach (var (variable, value) in For(verb, Environment.GetEnvironmentVariable))
        {
            info.Environment[variable] = value;
        }
    }
}

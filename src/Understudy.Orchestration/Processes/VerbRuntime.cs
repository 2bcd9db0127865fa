using System.Diagnostics;

namespace Understudy.Orchestration.Processes;

/// <summary>
/// Runtime settings a child `understudy` process is started with because of the verb it runs. The runtime reads
/// them before Main, so the parent that starts the child sets them in the child's environment (the `understudy`
/// script does the same for a verb run by hand). An operator's own setting, in this process's environment and so
/// inherited by every child, wins.
/// </summary>
/// <remarks>
/// <para><b>The monitor: thread-pool workers that sleep at once.</b> A .NET thread-pool worker that runs out of work
/// spins before it sleeps, calling <c>sched_yield</c> in a loop (the runtime's UnfairSemaphoreSpinLimit), in case more
/// work comes at once. A monitor's work comes in small pieces all the time (its 5 ms tick, 20 heartbeats a second
/// from each server, Raft rounds every 50 ms), so its workers woke and spun hundreds of times a second: in a profile
/// of a running group, half of each monitor's CPU was that spin, and a monitor did over 20 000 context switches a
/// second. Without the spin a monitor used 4 % of a core instead of 9–10 % (docs/BENCHMARKS.md, "Monitor failover,
/// round 22: the group's CPU"), and three monitors share two cores with the servers, whose failover needs that
/// CPU. The cost is a wake-up of a sleeping worker (a futex, microseconds) where a spinning one would have taken the
/// work, which nothing of the monitor's notices. Servers and benches keep the default: their work comes at rate,
/// where the spin finds it.</para>
/// <para><b>The monitor: methods compiled again after 4096 calls, not 30.</b> A method's first code is the JIT's quick
/// tier 0 (or the framework's precompiled code); after 30 calls the runtime compiles it again, optimised and
/// instrumented, then once more with the profile, on its tiered-compilation thread. Right after a monitor's start every
/// piece of its steady work (the tick, heartbeats, Raft rounds) and much of its start-up and first election cross 30
/// calls within a second or two: in a perf profile of a monitor's first 10 s half the samples were that thread, and a
/// monitor of a group used about 27 % of a core over those seconds, three times over with three monitors, while the
/// servers of a failover need the CPU. With 4096 what runs only during the start is never compiled again, and the
/// steady work much later (the 5 ms tick after 20 s, each server's heartbeat path after a minute), spread out rather
/// than all at once: a monitor's first 10 s cost about 15 % of a core (docs/BENCHMARKS.md, "Monitor failover, round
/// 23: the monitors' start"). The runtime reads the value as hexadecimal ("1000" is 4096). A monitor's work is small
/// and its timeouts are tens of milliseconds, which code at tier 0 for longer does not approach. Servers keep the
/// default: their hot paths are the throughput.</para>
/// </remarks>
public static class VerbRuntime
{
    /// <summary>How often an idle thread-pool worker spins (<c>sched_yield</c>) before it sleeps; 0: not at all.</summary>
    public const string SpinLimit = "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit";

    /// <summary>Calls of a method at a tier before the runtime compiles it at the next (the runtime's default is 30).</summary>
    public const string CallCountThreshold = "DOTNET_TC_CallCountThreshold";

    private static readonly (string Verb, string Variable, string Value)[] Settings =
    [
        ("monitor", SpinLimit, "0"),
        ("monitor", CallCountThreshold, "1000"),
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

using Understudy.Checking;
using Understudy.Core.StateMachines;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Workloads;

namespace Understudy.IntegrationTests;

/// <summary>
/// xUnit's side of the one recorded <see cref="Workload"/> (Understudy.Orchestration): the test's cancellation token,
/// the default deadline, and assertions that print the checker's figures.
/// </summary>
internal static class WorkloadAssertions
{
    /// <summary>Waits until <paramref name="count"/> appends in all have been acknowledged.</summary>
    public static Task WaitForAckedAsync(this Workload work, int count, string phase, TimeSpan? timeout = null) =>
        work.Recorder.WaitForAcknowledgedAsync(count, timeout ?? Poll.DefaultTimeout, phase, TestContext.Current.CancellationToken);

    /// <summary>
    /// Judges the history against the final log read from the primary: no rule of the checker may break, and the
    /// log's own sequence numbers run 1..n.
    /// </summary>
    public static CheckResult AssertValid(this Workload work, IReadOnlyList<SequencedMessage> finalLog, ITestOutputHelper output)
    {
        for (var i = 0; i < finalLog.Count; i++)
        {
            Assert.True(finalLog[i].Seq == i + 1, $"the final log's message {i + 1} has sequence number {finalLog[i].Seq}");
        }

        var result = work.Recorder.Check([.. finalLog.Select(m => m.Text)]);
        output.WriteLine($"history: {result.Stats}");
        Assert.True(result.Valid, $"the history breaks the rules: {string.Join("\n", result.Violations)}\nstats: {result.Stats}");
        return result;
    }
}

namespace Understudy.Core.Tests.Replication;

public sealed class PromotionRehearsalTests
{
    [Theory]
    [InlineData(BuiltInStateMachine.Messages)]
    [InlineData(BuiltInStateMachine.Kv)]
    public void A_rehearsal_commits_its_writes_and_answers_its_reads(BuiltInStateMachine machine)
    {
        var outcome = PromotionRehearsal.Run(new ServerOptions(), machine, TimeProvider.System);

        Assert.Equal(new RehearsalOutcome(8, 2, outcome.MessagesCoded), outcome);
        Assert.True(outcome.MessagesCoded > 10, $"messages through the codec: {outcome.MessagesCoded}");
    }
}

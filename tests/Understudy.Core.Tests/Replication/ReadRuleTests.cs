namespace Understudy.Core.Tests.Replication;

/// <summary>
/// The read rule and the deduplication rule on their own: the decisions that keep reads linearizable and writes
/// applied once. The simulator's broken variants show what breaks when either is swapped.
/// </summary>
public class ReadRuleTests
{
    [Theory]
    [InlineData(ServerRole.Primary, true, true, false, ReadDecision.Serve)]
    [InlineData(ServerRole.Primary, false, true, false, ReadDecision.NoLease)]
    [InlineData(ServerRole.Primary, true, false, false, ReadDecision.EpochNotCommitted)]
    [InlineData(ServerRole.Primary, true, true, true, ReadDecision.HandingOver)]
    [InlineData(ServerRole.Backup, true, true, false, ReadDecision.NotPrimary)]
    [InlineData(ServerRole.Backup, false, false, false, ReadDecision.NotPrimary)]
    public void Only_a_leased_primary_whose_epoch_has_committed_and_that_is_not_handing_over_serves_a_read(ServerRole role, bool lease, bool committed, bool handingOver, ReadDecision expected)
    {
        Assert.Equal(expected, LeasedPrimaryReadRule.Instance.Decide(new ReadView(role, lease, committed, handingOver)));
    }

    [Fact]
    public void A_write_the_table_has_applied_is_a_retry_and_is_not_applied_again()
    {
        var store = new MessageStore();
        var state = new ReplicatedState(store);
        var first = new LogEntry(1, 1, EntryKind.Command, 7, 1, 1, MessageStoreCommands.Append("a"), 0);
        var retry = new LogEntry(2, 1, EntryKind.Command, 7, 1, 1, MessageStoreCommands.Append("a"), 0);

        var answer = state.Apply(first);
        var again = state.Apply(retry);

        Assert.Equal(1, store.Count);
        Assert.Equal(answer.ToArray(), again.ToArray());
        Assert.Equal(DedupLookup.Applied, state.LookupWrite(7, 1, out var stored));
        Assert.Equal(answer.ToArray(), stored.ToArray());
        Assert.Equal(DedupLookup.New, state.LookupWrite(7, 2, out _));
    }
}

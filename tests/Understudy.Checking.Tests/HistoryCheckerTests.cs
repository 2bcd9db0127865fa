
namespace Understudy.Checking.Tests;

/// <summary>
/// The checker against hand-made histories: each bad one breaks exactly one rule and must be flagged with
/// exactly that kind; each good one must pass.
/// </summary>
public class HistoryCheckerTests
{
    [Fact]
    public void Checker_flags_an_acknowledged_append_missing_from_the_final_log_as_LostWrite()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Append(1, "b", 3, 4, seq: 1)
            .Check("b");

        AssertOnly(ViolationKind.LostWrite, result);
        Assert.Contains("'a'", result.Violations[0].Detail, StringComparison.Ordinal);
        Assert.Equal(1, result.Stats.Lost);
    }

    [Fact]
    public void Checker_flags_a_message_present_twice_as_DuplicateWrite()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Check("a", "a");

        AssertOnly(ViolationKind.DuplicateWrite, result);
        Assert.Equal(1, result.Stats.Duplicated);
    }

    [Fact]
    public void Checker_flags_a_message_nobody_sent_as_PhantomWrite()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Check("a", "ghost");

        AssertOnly(ViolationKind.PhantomWrite, result);
    }

    [Fact]
    public void Checker_flags_an_acknowledgement_with_another_place_than_the_final_log_as_WrongSequence()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Append(0, "b", 3, 4, seq: 1) // told 1, but it is second
            .Check("a", "b");

        AssertOnly(ViolationKind.WrongSequence, result);
        Assert.Contains("'b'", result.Violations[0].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Checker_flags_a_failed_append_found_in_the_final_log_as_FailedWriteApplied()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, OpType.Fail)
            .Check("a");

        AssertOnly(ViolationKind.FailedWriteApplied, result);
    }

    [Fact]
    public void Checker_flags_an_append_acknowledged_before_another_was_sent_but_placed_after_it_as_RealTimeOrder()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 2)
            .Append(1, "b", 3, 4, seq: 1)
            .Check("b", "a");

        AssertOnly(ViolationKind.RealTimeOrder, result);
    }

    [Fact]
    public void Checker_flags_RealTimeOrder_against_an_unacknowledged_append_that_landed_too()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 2)
            .Append(1, "b", 3, 9, OpType.Info) // sent after a was acknowledged, yet before it
            .Check("b", "a");

        AssertOnly(ViolationKind.RealTimeOrder, result);
    }

    [Fact]
    public void Checker_flags_a_read_that_is_not_a_slice_of_the_final_order_as_ReadNotPrefix()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Append(0, "b", 3, 4, seq: 2)
            .Read(1, 5, 6, 1, "b")
            .Check("a", "b");

        AssertOnly(ViolationKind.ReadNotPrefix, result);
    }

    [Fact]
    public void Checker_flags_a_count_longer_than_the_final_log_as_ReadNotPrefix()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Count(1, 3, 4, 2)
            .Check("a");

        AssertOnly(ViolationKind.ReadNotPrefix, result);
    }

    [Fact]
    public void Checker_flags_a_read_missing_a_write_acknowledged_before_it_began_as_StaleRead()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Read(1, 3, 4, 1)
            .Check("a");

        AssertOnly(ViolationKind.StaleRead, result);
    }

    [Fact]
    public void Checker_flags_a_count_missing_a_write_acknowledged_before_it_began_as_StaleRead()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Count(1, 3, 4, 0)
            .Check("a");

        AssertOnly(ViolationKind.StaleRead, result);
    }

    [Fact]
    public void Checker_flags_a_read_going_backwards_after_an_earlier_read_as_StaleRead()
    {
        // "a" was never acknowledged, so only the earlier read shows it had landed.
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 20, OpType.Info)
            .Read(1, 2, 3, 1, "a")
            .Read(2, 4, 5, 1)
            .Check("a");

        AssertOnly(ViolationKind.StaleRead, result);
    }

    [Fact]
    public void Checker_flags_two_servers_acknowledging_in_one_epoch_as_SplitBrain()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1, epoch: 2, server: "127.0.0.1:8090")
            .Append(1, "b", 3, 4, seq: 2, epoch: 2, server: "127.0.0.1:8089")
            .Check("a", "b");

        AssertOnly(ViolationKind.SplitBrain, result);
        Assert.Equal(1, result.Stats.EpochViolations);
    }

    public static TheoryData<string, Operation[], string[]> MalformedHistories() => new()
    {
        {
            "completion without invoke",
            [new Operation { Process = 0, Type = OpType.Ok, Function = OpFunction.Append, Time = 1, Value = "a", Seq = 1 }],
            []
        },
        {
            "invoke while the process's previous call is open",
            [
                new Operation { Process = 0, Type = OpType.Invoke, Function = OpFunction.Append, Time = 1, Value = "a" },
                new Operation { Process = 0, Type = OpType.Invoke, Function = OpFunction.Append, Time = 2, Value = "b" },
                new Operation { Process = 0, Type = OpType.Ok, Function = OpFunction.Append, Time = 3, Value = "b", Seq = 1 },
            ],
            ["b"]
        },
        {
            "the same value appended by two calls",
            [
                new Operation { Process = 0, Type = OpType.Invoke, Function = OpFunction.Append, Time = 1, Value = "a" },
                new Operation { Process = 0, Type = OpType.Ok, Function = OpFunction.Append, Time = 2, Value = "a", Seq = 1 },
                new Operation { Process = 1, Type = OpType.Invoke, Function = OpFunction.Append, Time = 3, Value = "a" },
                new Operation { Process = 1, Type = OpType.Ok, Function = OpFunction.Append, Time = 4, Value = "a", Seq = 1 },
            ],
            ["a"]
        },
        {
            "a completion of another function than the invoke",
            [
                new Operation { Process = 0, Type = OpType.Invoke, Function = OpFunction.Append, Time = 1, Value = "a" },
                new Operation { Process = 0, Type = OpType.Ok, Function = OpFunction.Read, Time = 2, ReadFrom = 1, ReadValues = ["a"] },
            ],
            ["a"]
        },
    };

    [Theory]
    [MemberData(nameof(MalformedHistories))]
    public void Checker_flags_a_history_that_is_not_well_formed_as_MalformedHistory(string why, Operation[] operations, string[] finalLog)
    {
        var result = HistoryChecker.Check(operations, finalLog);

        Assert.False(result.Valid, why);
        AssertOnly(ViolationKind.MalformedHistory, result);
    }

    [Fact]
    public void Checker_passes_indeterminate_writes_whether_or_not_they_landed()
    {
        var result = new HistoryBuilder()
            .Append(0, "landed", 1, 5, OpType.Info)
            .Append(1, "vanished", 2, 6, OpType.Info)
            .Append(2, "never-answered", 3, null)
            .Append(3, "acked", 7, 8, seq: 3)
            .Append(4, "refused", 9, 10, OpType.Fail)
            .Check("landed", "never-answered", "acked");

        AssertValid(result);
        Assert.Equal(1, result.Stats.Acknowledged);
        Assert.Equal(1, result.Stats.Failed);
        Assert.Equal(3, result.Stats.Indeterminate);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Checker_passes_concurrent_appends_in_either_order(bool bFirst)
    {
        // a and b overlap in time: either order is linearizable.
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 6, seq: bFirst ? 2 : 1)
            .Append(1, "b", 2, 5, seq: bFirst ? 1 : 2)
            .Check(bFirst ? ["b", "a"] : ["a", "b"]);

        AssertValid(result);
    }

    [Fact]
    public void Checker_passes_reads_that_may_or_may_not_see_a_concurrent_write()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Append(0, "b", 3, 20, seq: 2)
            .Read(1, 4, 5, 1, "a")       // b not yet visible
            .Read(2, 6, 7, 1, "a", "b")  // now it is
            .Count(3, 8, 9, 2)
            .Read(1, 21, 22, 2, "b")      // a slice from the middle
            .Check("a", "b");

        AssertValid(result);
        Assert.Equal(4, result.Stats.Reads);
    }

    [Fact]
    public void Checker_passes_a_read_cut_short_by_its_limit()
    {
        var ops = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Append(0, "b", 3, 4, seq: 2)
            .Operations;
        ops.Add(new Operation { Process = 1, Type = OpType.Invoke, Function = OpFunction.Read, Time = 5, ReadFrom = 1, ReadLimit = 1 });
        ops.Add(new Operation { Process = 1, Type = OpType.Ok, Function = OpFunction.Read, Time = 6, ReadFrom = 1, ReadValues = ["a"] });

        AssertValid(HistoryChecker.Check(ops, ["a", "b"]));
    }

    [Fact]
    public void Checker_passes_one_server_per_epoch_across_failovers()
    {
        var result = new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1, epoch: 1, server: "127.0.0.1:8090")
            .Append(0, "b", 3, 4, seq: 2, epoch: 2, server: "127.0.0.1:8089")
            .Append(1, "c", 5, 6, seq: 3, epoch: 2, server: "127.0.0.1:8089")
            .Check("a", "b", "c");

        AssertValid(result);
    }

    private static void AssertOnly(ViolationKind kind, CheckResult result)
    {
        Assert.False(result.Valid, $"the checker must flag {kind}");
        Assert.All(result.Violations, v => Assert.Equal(kind, v.Kind));
    }

    private static void AssertValid(CheckResult result) =>
        Assert.True(result.Valid, string.Join("; ", result.Violations));
}


namespace Understudy.Checking.Tests;

/// <summary>Histories are kept as JSON lines (Jepsen's format); reading one back must give the same history.</summary>
public class HistoryJsonTests
{
    [Fact]
    public void History_json_lines_round_trip_keeps_every_field()
    {
        var history = new History(new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1, epoch: 3, server: "127.0.0.1:8090")
            .Append(1, "b", 3, 4, OpType.Fail)
            .Append(2, "c", 5, 6, OpType.Info)
            .Read(3, 7, 8, 1, "a", "ünï ✓")
            .Count(4, 9, 10, 1)
            .Append(5, "open", 11, null)
            .Operations);

        var text = history.ToJsonLines();
        var back = History.ReadJsonLines(new StringReader(text));

        Assert.Equal(history.Count, back.Count);
        Assert.Equal(text, back.ToJsonLines());
        for (var i = 0; i < history.Count; i++)
        {
            var (x, y) = (history.Operations[i], back.Operations[i]);
            Assert.Equal(x with { ReadValues = null }, y with { ReadValues = null });
            Assert.Equal(x.ReadValues, y.ReadValues);
        }
    }

    [Fact]
    public void History_json_lines_are_one_object_per_line_with_names_not_numbers_and_no_nulls()
    {
        var history = new History(new HistoryBuilder().Append(0, "a", 1, 2, seq: 1).Operations);

        var lines = history.ToJsonLines().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(2, lines.Length);
        Assert.Contains("\"Type\":\"Invoke\"", lines[0], StringComparison.Ordinal);
        Assert.Contains("\"Function\":\"Append\"", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain("null", lines[0], StringComparison.Ordinal);
        Assert.Contains("\"Seq\":1", lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void History_read_back_is_judged_the_same()
    {
        var history = new History(new HistoryBuilder()
            .Append(0, "a", 1, 2, seq: 1)
            .Read(1, 3, 4, 1)
            .Operations);
        var back = History.ReadJsonLines(new StringReader(history.ToJsonLines()));

        var before = HistoryChecker.Check(history, ["a"]);
        var after = HistoryChecker.Check(back, ["a"]);

        Assert.False(before.Valid);
        Assert.Equal(before.Violations, after.Violations);
    }

    [Fact]
    public void History_reader_refuses_a_line_that_is_not_an_operation()
    {
        Assert.Throws<FormatException>(() => History.ReadJsonLines(new StringReader("null\n")));
    }
}

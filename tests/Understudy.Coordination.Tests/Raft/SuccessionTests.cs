using System.Text.RegularExpressions;
using Understudy.Coordination.Raft;
using Understudy.Orchestration.Polling;

namespace Understudy.Coordination.Tests.Raft;

public sealed partial class SuccessionTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public void The_line_runs_from_the_highest_rank_down_and_skips_the_leader()
    {
        var line = new Succession(5, TimeSpan.FromMilliseconds(100));

        // Leader ranked 2: 4, 3, 1, 0; the leader itself last.
        Assert.Equal([3, 2, 4, 1, 0], Enumerable.Range(0, 5).Select(r => line.PositionOf(r, 2)));

        // Leader ranked 4 (the top): 3 is next.
        Assert.Equal([3, 2, 1, 0, 4], Enumerable.Range(0, 5).Select(r => line.PositionOf(r, 4)));

        // No leader heard since the start: the full line.
        Assert.Equal([4, 3, 2, 1, 0], Enumerable.Range(0, 5).Select(r => line.PositionOf(r, null)));
    }

    [Fact]
    public void Each_member_may_stand_only_after_the_ones_before_it_had_a_whole_chance()
    {
        var chance = TimeSpan.FromMilliseconds(100);
        var line = new Succession(3, chance);

        // Leader ranked 0: 2 is the successor and may always stand; 1 only once 0 has been silent a whole chance.
        Assert.True(line.MayStand(2, 0, TimeSpan.Zero));
        Assert.False(line.MayStand(1, 0, TimeSpan.Zero));
        Assert.False(line.MayStand(1, 0, chance - TimeSpan.FromMilliseconds(1)));
        Assert.True(line.MayStand(1, 0, chance));

        // A deposed leader is last in its own line.
        Assert.False(line.MayStand(0, 0, chance));
        Assert.True(line.MayStand(0, 0, 2 * chance));
    }

    [Fact]
    public async Task After_each_kill_of_the_leader_the_member_next_in_line_wins_with_the_only_candidacy()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup();
        await group.StartAllAsync(ct);
        var leader = await group.WaitForConfirmedLeaderAsync("fresh group", ct);

        for (var kill = 1; kill <= 4; kill++)
        {
            var phase = $"kill {kill}";
            var successor = await WaitForLineAsync(group, leader, phase + ", before", ct);

            var linesBefore = group.Lines.Count;
            await group.StopAsync(leader);
            var next = await group.WaitForConfirmedLeaderAsync(phase + ", after", ct);
            Assert.True(next == successor, $"{phase}: member {next} won, but {successor} was next in line after {leader}; {group.Log()}");

            // Every candidacy since the kill (DotNext logs one line per transition to candidate, whatever its outcome).
            var candidacies = group.Lines.Skip(linesBefore).Where(l => CandidacyLine().IsMatch(l)).ToList();
            Assert.True(candidacies.Count == 1,
                $"{phase}: expected exactly one candidacy after the leader's death, saw {candidacies.Count}:{Environment.NewLine}" +
                string.Join(Environment.NewLine, candidacies) + Environment.NewLine + group.Log());

            // The killed member comes back (on its folder, as a restarted process) and takes its place in the line
            // once it has caught up: a member whose log is behind cannot win votes (that case is the fallback's).
            var restarted = leader;
            await group.StartAsync(restarted, ct);
            leader = await group.WaitForConfirmedLeaderAsync(phase + ", the killed member back", ct);
            await Poll.UntilAsync(() => group[restarted].IsLevelWithLeader, Deadline, $"{phase}: member {restarted}, restarted, level with the leader",
                group.Describe, ct);
        }
    }

    [Fact]
    public async Task A_group_of_five_that_loses_its_leader_and_the_next_in_line_still_elects_a_leader()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var group = new RaftGroup(size: 5);
        await group.StartAllAsync(ct);
        var leader = await group.WaitForConfirmedLeaderAsync("fresh group of five", ct);
        var successor = await WaitForLineAsync(group, leader, "before the kills", ct);

        await Task.WhenAll(group.StopAsync(leader), group.StopAsync(successor));
        var next = await group.WaitForConfirmedLeaderAsync("after the leader and the next in line died", ct);
        Assert.NotEqual(leader, next);
        Assert.NotEqual(successor, next);
        Assert.Contains(group.Lines, l => l.Contains("may stand for election", StringComparison.Ordinal));
    }

    // Waits until every running follower but the one next in line after <leader> stands by; returns that one.
    private static async Task<int> WaitForLineAsync(RaftGroup group, int leader, string phase, CancellationToken ct)
    {
        var line = new Succession(group.Size, group.OptionsOf(leader).SuccessorChance);
        var rankOfLeader = group.OptionsOf(leader).RankOf(group.OptionsOf(leader).Self);
        var successor = Enumerable.Range(0, group.Size).Single(i => line.PositionOf(group.OptionsOf(i).RankOf(group.OptionsOf(i).Self), rankOfLeader) == 0);
        await Poll.UntilAsync(
            () => group.Running.All(i => group[i].StandsBy == (i != leader && i != successor)),
            Deadline,
            $"{phase}: every follower but member {successor} (next in line after {leader}) stands by",
            () => string.Join(", ", group.Running.Select(i => $"m{i} standby={group[i].StandsBy}")) + "; " + group.Describe(),
            ct);
        return successor;
    }

    [GeneratedRegex("Transition to Candidate state has completed")]
    private static partial Regex CandidacyLine();
}

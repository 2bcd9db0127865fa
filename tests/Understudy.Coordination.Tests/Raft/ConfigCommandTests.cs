using System.Buffers;
using Understudy.Coordination.Raft;
using Understudy.Protocol;

namespace Understudy.Coordination.Tests.Raft;

public sealed class ConfigCommandTests
{
    private static readonly ClusterConfig Stored = Configs.Next(Configs.Next(ClusterConfig.Initial, 8090), 8089);

    [Fact]
    public void An_entry_round_trips_through_its_bytes()
    {
        var command = new ConfigCommand(Stored.Version, Configs.Next(Stored, 8088));
        var parsed = ConfigCommand.Parse(new ReadOnlySequence<byte>(command.ToBytes()));
        Assert.Equal(command.ExpectedVersion, parsed.ExpectedVersion);
        Assert.True(parsed.Next.SameAs(command.Next));
        Assert.True(ConfigCommand.ParseSnapshot(ConfigCommand.SnapshotBytes(Stored)).SameAs(Stored));
    }

    [Fact]
    public void Damaged_entries_and_snapshots_are_format_errors()
    {
        var bytes = new ConfigCommand(1, Stored).ToBytes();
        bytes[0] = 9;
        Assert.Throws<FormatException>(() => ConfigCommand.Parse(new ReadOnlySequence<byte>(bytes)));
        Assert.Throws<FormatException>(() => ConfigCommand.Parse(new ReadOnlySequence<byte>(new byte[3])));
        Assert.Throws<FormatException>(() => ConfigCommand.ParseSnapshot([1, 2, 3]));
    }

    [Fact]
    public void Apply_commits_only_when_the_version_matches_and_refusals_return_the_current_configuration()
    {
        var next = Configs.Next(Stored, 8088);
        var committed = ConfigStateMachine.Decide(Stored, new ConfigCommand(Stored.Version, next));
        Assert.True(committed.Committed);
        Assert.Same(next, committed.Current);

        var stale = ConfigStateMachine.Decide(Stored, new ConfigCommand(Stored.Version - 1, next));
        Assert.False(stale.Committed);
        Assert.Same(Stored, stale.Current);

        // Every member applies the same rule, so an entry that would take the version or epoch back is refused everywhere.
        Assert.False(ConfigStateMachine.Decide(Stored, new ConfigCommand(Stored.Version, Stored with { Version = Stored.Version })).Committed);
        Assert.False(ConfigStateMachine.Decide(Stored, new ConfigCommand(Stored.Version, next with { Epoch = Stored.Epoch - 1 })).Committed);
    }
}

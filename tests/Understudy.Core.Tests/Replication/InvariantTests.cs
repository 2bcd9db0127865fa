using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// <see cref="ServerNode.CheckInvariants"/>: silent through the ordinary life of a cluster, loud when the
/// node's state is corrupted (here through the public log and state objects, the only way to get there).
/// </summary>
public class InvariantTests
{
    [Fact]
    public void Invariants_hold_through_replication_promotion_step_down_truncation_and_handover()
    {
        var p = StartPrimary();
        var b1 = new ServerHarness(B1);
        var b2 = new ServerHarness(B2);
        ServerHarness[] all = [p, b1, b2];
        void Check()
        {
            foreach (var s in all)
            {
                s.Node.CheckInvariants();
            }
        }

        Check();
        p.Write(new ClientRef(1), 42, 1, "a");
        p.Write(new ClientRef(1), 42, 2, "b");
        Check();
        Network.Pump(all);
        p.Tick();
        Network.Pump(all);
        Check();
        Assert.Equal(3, p.Node.CommitIndex);
        Assert.Equal(3, b1.Node.CommitIndex);

        // A write only the old primary (and whoever hears it first) holds: the new primary's log replaces it.
        p.Write(new ClientRef(1), 42, 3, "c");
        b1.Push(Config(2, 6, B1, All));
        Assert.Equal(ServerRole.Primary, b1.Node.Role);
        Check();
        Network.Pump(all);
        b1.Tick();
        Network.Pump(all);
        Check();
        Assert.Equal(ServerRole.Backup, p.Node.Role);
        Assert.Equal(2, p.Node.Epoch);
        Assert.Contains(all, s => s.Env.Of<TruncatedLog>().Any());
        Assert.All(all, s => Assert.Equal(2, s.Node.LastEpoch));
        Assert.Equal(b1.Node.LastIndex, b1.Node.CommitIndex);

        // A handover to a caught-up backup: the primary gives up its lease and takes no new one.
        b1.Deliver(new StepDown(2, B2));
        b1.HeartbeatAck();
        Check();
        Assert.Single(b1.Env.EventsOf(ServerEventKind.HandoverReady));
        Assert.False(b1.Node.HasLease);
    }

    [Fact]
    public void Commit_index_past_the_end_of_the_log_breaks_an_invariant()
    {
        var b = BackupThatCommittedTwo();

        b.Node.Log.TruncateFrom(2);

        var e = Assert.Throws<InvariantViolationException>(b.Node.CheckInvariants);
        Assert.Equal("0 <= commit index <= last log index", e.Invariant);
        Assert.Contains("commit index 2, last index 1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Applied_state_behind_the_commit_index_breaks_an_invariant()
    {
        var b = BackupThatCommittedTwo();

        b.Node.State.Restore(new ReplicatedState(new MessageStore()).SnapshotBytes());

        var e = Assert.Throws<InvariantViolationException>(b.Node.CheckInvariants);
        Assert.Equal("applied index == commit index", e.Invariant);
        Assert.Contains("applied index 0, commit index 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Log_entry_from_a_later_epoch_than_the_servers_breaks_an_invariant()
    {
        var b = BackupThatCommittedTwo();

        b.Node.Log.Append(Entry(4, 5));

        var e = Assert.Throws<InvariantViolationException>(b.Node.CheckInvariants);
        Assert.Equal("log's last epoch, recovered epoch, configuration epoch <= epoch", e.Invariant);
        Assert.Contains("epoch 1, log's last epoch 5", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Primary_whose_epoch_start_entry_was_replaced_breaks_an_invariant()
    {
        var p = new ServerHarness(P);
        p.Push(Config(1, 5, P, All));
        Assert.Equal(ServerRole.Primary, p.Node.Role);
        p.Node.CheckInvariants();

        p.Node.Log.TruncateFrom(1);
        p.Node.Log.Append(Entry(1, 1));

        var e = Assert.Throws<InvariantViolationException>(p.Node.CheckInvariants);
        Assert.Equal("primary: its log holds its epoch's EpochStart entry", e.Invariant);
    }

    private static ServerHarness BackupThatCommittedTwo()
    {
        var b = new ServerHarness(B1);
        b.Deliver(Frame(1, P, 0, 0, 2, Entry(1, 1), Entry(2, 1), Entry(3, 1)));
        Assert.Equal(2, b.Node.CommitIndex);
        b.Node.CheckInvariants();
        return b;
    }
}

using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

// Retried requests, newer epochs and restarts: split from PrimaryTests.cs by concern, one partial class.
public partial class PrimaryTests
{
    [Fact]
    public void Primary_returns_first_result_for_a_retried_request()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");

        // Retried while in flight (another connection): not logged again.
        p.Write(C2, 42, 1, "a");
        Assert.Single(p.Env.Appended);

        p.SyncDisk();
        p.AckFrom(B1, 2);
        p.AckFrom(B2, 2);
        var first = Single(p.Env.RepliesTo(C1));
        var second = Single(p.Env.RepliesTo(C2));
        Assert.Equal(ResponseStatus.Ok, first.Status);
        Assert.Equal(ResponseStatus.Ok, second.Status);
        Assert.Equal(1, Seq(first));
        Assert.Equal(1, Seq(second));

        // Retried after it committed: answered at once with the first result, still not logged again.
        p.Write(C3, 42, 1, "a");
        var third = Single(p.Env.RepliesTo(C3));
        Assert.Equal(ResponseStatus.Ok, third.Status);
        Assert.Equal(1, Seq(third));
        Assert.Single(p.Env.Appended);
        Assert.Equal(1, p.Machine.Count);
    }

    [Fact]
    public void New_primary_answers_a_retry_of_an_uncommitted_earlier_write_without_logging_it_again()
    {
        // Entry 1 (client 1, seq 1) was written by the old primary and never confirmed committed here.
        var p = new ServerHarness(P, recoveredEpoch: 1, log: Log(1));
        p.Push(Config(2, 5, P, [P, B1]));

        p.Write(C1, 1, 1, "m1");
        Assert.Equal([2L], p.Env.Appended.Select(e => e.Index)); // only the epoch-start entry

        p.SyncDisk();
        p.AckFrom(B1, 2);
        var reply = Single(p.Env.RepliesTo(C1));
        Assert.Equal(ResponseStatus.Ok, reply.Status);
        Assert.Equal(1, Seq(reply));
        Assert.Equal(1, p.Machine.Count);
    }

    [Fact]
    public void Primary_refuses_a_retry_whose_result_the_client_said_it_no_longer_needs()
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.Write(C1, 42, 2, "b", firstIncomplete: 2); // the client has its answer to 1
        p.SyncDisk();
        p.AckFrom(B1, 3);
        p.AckFrom(B2, 3);

        p.Write(C2, 42, 1, "a");

        Assert.Equal(ResponseStatus.Rejected, Single(p.Env.RepliesTo(C2)).Status);
        Assert.Equal(3, p.Node.LastIndex);
        Assert.Equal(2, p.Machine.Count);
    }

    public static TheoryData<string> NewerEpochSignals() => ["heartbeat-ack", "config-push", "replicate-ack", "replicate"];

    [Theory]
    [MemberData(nameof(NewerEpochSignals))]
    public void Primary_steps_down_on_a_newer_epoch_and_tells_waiting_clients_where_to_go(string signal)
    {
        var p = StartPrimary();
        p.Write(C1, 42, 1, "a");
        p.Write(C2, 42, 1, "a");
        var newer = Config(2, 6, B1, [B1, B2]);

        switch (signal)
        {
            case "heartbeat-ack": p.HeartbeatAck(newer); break;
            case "config-push": p.Push(newer, withLease: false); break;
            case "replicate-ack": p.Deliver(new ReplicateAck(2, B1, BackupIncarnation, false, 0, 0, 1, 1, 0, 0, 0)); break;
            case "replicate": p.Deliver(Frame(2, B1, 1, 1, 1, Entry(2, 2))); break;
        }

        Assert.Equal(ServerRole.Backup, p.Node.Role);
        Assert.Equal(2, p.Node.Epoch);
        Assert.Contains(new SavedEpoch(2), p.Env.Calls);
        Assert.Single(p.Env.EventsOf(ServerEventKind.SteppedDown));
        foreach (var client in new[] { C1, C2 })
        {
            var reply = Single(p.Env.RepliesTo(client));
            Assert.Equal(ResponseStatus.NotPrimary, reply.Status);
            Assert.Equal(2, reply.Epoch);
            if (signal != "replicate-ack")
            {
                Assert.Equal(B1, reply.Primary); // the backup's answer does not say who replaced this primary
            }
        }

        // And it takes no more writes.
        p.Write(C3, 42, 2, "b");
        Assert.Equal(ResponseStatus.NotPrimary, Single(p.Env.RepliesTo(C3)).Status);
        Assert.False(p.Node.IsServing);
    }

    [Fact]
    public void Primary_refuses_a_frame_from_another_primary_of_its_own_epoch()
    {
        var p = StartPrimary();

        p.Deliver(Frame(1, B1, 1, 1, 1, Entry(2, 1)));

        Assert.Equal(ServerRole.Primary, p.Node.Role);
        Assert.Empty(p.Env.Appended);
        Assert.Single(p.Env.EventsOf(ServerEventKind.SafetyViolation));
    }

    [Fact]
    public void Restarted_server_never_leads_the_epoch_it_recovered_with()
    {
        var s = new ServerHarness(P, recoveredEpoch: 3, log: Log(1, 3));

        s.Push(Config(3, 9, P, All));

        Assert.Equal(ServerRole.Backup, s.Node.Role);
        Assert.Empty(s.Env.EventsOf(ServerEventKind.BecamePrimary));
        Assert.Empty(s.Env.Appended);
        s.Write(C1, 42, 1, "a");
        Assert.Equal(ResponseStatus.NotPrimary, Single(s.Env.RepliesTo(C1)).Status);

        // The next epoch it may lead.
        s.Push(Config(4, 10, P, All));
        Assert.Equal(ServerRole.Primary, s.Node.Role);
        Assert.Equal(4, s.Node.Epoch);
    }

    [Fact]
    public void Restarted_server_takes_its_recovered_epoch_from_its_log_when_that_is_newer()
    {
        // The saved epoch says 2 but the log holds an entry of epoch 3 (the epoch file lagged).
        var s = new ServerHarness(P, recoveredEpoch: 2, log: Log(1, 3));

        s.Push(Config(3, 9, P, All));

        Assert.Equal(ServerRole.Backup, s.Node.Role);
        Assert.Equal(3, s.Node.Epoch);
    }
}

using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

// How the primary batches and pipelines frames to its backups: split from PrimaryTests.cs by concern, one partial class.
public partial class PrimaryTests
{
    [Fact]
    public void Primary_batches_many_client_writes_from_one_flush_into_one_frame_per_backup()
    {
        var p = StartPrimary();

        p.Batch(n =>
        {
            for (var i = 1; i <= 10; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });

        foreach (var backup in new[] { B1, B2 })
        {
            var frame = Assert.Single(p.Env.SentTo<Replicate>(backup));
            Assert.Equal(10, frame.Entries.Length);
            Assert.Equal(1, frame.PrevIndex);
        }

        Assert.Equal(11, Assert.Single(p.Env.Syncs).ThroughIndex);
    }

    [Fact]
    public void Primary_sends_a_backup_more_than_one_batch_behind_catch_up_sized_frames()
    {
        var p = StartPrimary(inSync: [P, B1], options: new ServerOptions { MaxBatchEntries = 4, CatchUpBatchEntries = 16 });

        p.Batch(n =>
        {
            for (var i = 1; i <= 30; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });

        // 30 behind: frames of up to 16 entries, not 4.
        Assert.Equal([16, 14], p.Env.SentTo<Replicate>(B1).Select(f => f.Entries.Length));
        p.Forget();

        // Within one batch of the end: ordinary frames.
        p.AckFrom(B1, 31);
        p.Batch(n =>
        {
            for (var i = 31; i <= 33; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });
        Assert.Equal([3], p.Env.SentTo<Replicate>(B1).Select(f => f.Entries.Length));
    }

    [Fact]
    public void Primary_pipelines_again_once_a_backup_has_acknowledged_everything_it_was_sent()
    {
        var p = StartPrimary(inSync: [P, B1]);
        var b = new ServerHarness(B1, recoveredEpoch: 1, log: [.. p.Node.Log.Range(1, 1)]);

        // Eight writes, each flushed on its own: eight frames reach the backup before its disk syncs.
        for (var i = 1; i <= 8; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        foreach (var sent in p.TakeOutbox().Where(s => s.To == B1))
        {
            b.Deliver((Replicate)sent.Message);
        }

        // One sync covers all eight; the backup answers once, for everything.
        b.SyncDisk();
        p.Deliver(Assert.Single(b.Env.SentTo<ReplicateAck>(P)));
        p.SyncDisk();
        Assert.Equal(9, p.Node.CommitIndex);
        Assert.Equal(9, p.Node.Followers.Single(f => f.Address == B1).MatchIndex);

        // Nothing is outstanding with B1, so eight more writes flushed one by one may all be sent at once.
        p.TakeOutbox();
        for (var i = 9; i <= 16; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        Assert.Equal(8, p.TakeOutbox().Count(s => s.To == B1 && s.Message is Replicate));
    }
}

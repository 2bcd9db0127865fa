using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

// The in-sync window (ServerOptions.InSyncFramesInFlight): writes that arrive while a frame is on the wire to an in-sync
// backup wait and go, all together, in the next frame.
public partial class PrimaryTests
{
    [Fact]
    public void Writes_arriving_while_a_frame_is_in_flight_to_an_in_sync_backup_all_go_in_the_next_frame()
    {
        var p = StartPrimary(inSync: [P, B1], options: new ServerOptions { InSyncFramesInFlight = 1 });

        // 64 writes, each flushed on its own as 64 one-request connections deliver them: one frame goes out at once.
        for (var i = 1; i <= 64; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        var first = Assert.Single(p.TakeOutbox().Where(s => s.To == B1).Select(s => s.Message).OfType<Replicate>());
        Assert.Single(first.Entries.ToArray());

        // Its answer opens the window: the 63 that waited go in one frame.
        p.SyncDisk();
        p.AckFrom(B1, 2);
        var second = Assert.Single(p.TakeOutbox().Where(s => s.To == B1).Select(s => s.Message).OfType<Replicate>());
        Assert.Equal(63, second.Entries.Length);
        Assert.Equal(2, second.PrevIndex);
    }

    [Fact]
    public void Without_the_window_a_frame_goes_per_flush_to_an_in_sync_backup()
    {
        // The same 64 writes by default (MaxInflightFrames): eight frames of a few writes (what the window saves).
        var p = StartPrimary(inSync: [P, B1]);
        for (var i = 1; i <= 64; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        Assert.Equal(8, p.TakeOutbox().Count(s => s.To == B1 && s.Message is Replicate));
    }

    [Fact]
    public void A_write_is_acknowledged_only_once_every_in_sync_backup_holds_it_whatever_frame_carried_it()
    {
        var p = StartPrimary(options: new ServerOptions { InSyncFramesInFlight = 1 });
        for (var i = 1; i <= 10; i++)
        {
            p.Write(new ClientRef(i), 42, i, $"m{i}");
        }

        p.SyncDisk();

        // B1 answers for everything (after two frames); B2, slow, has answered for nothing: nothing is committed.
        p.AckFrom(B1, 2);
        p.AckFrom(B1, 11);
        Assert.Equal(1, p.Node.CommitIndex);
        Assert.Empty(p.Env.Replies);

        // B2 was sent the first write only, and every other write once it answered: it gets every entry, in order.
        var toB2 = p.Env.SentTo<Replicate>(B2);
        Assert.Single(toB2);
        p.AckFrom(B2, 2);
        Assert.Equal(2, p.Node.CommitIndex);
        var next = p.Env.SentTo<Replicate>(B2)[^1];
        Assert.Equal([.. Enumerable.Range(3, 9).Select(i => (long)i)], next.Entries.ToArray().Select(e => e.Index));
        Assert.Equal(2, next.PrevIndex);

        p.AckFrom(B2, 11);
        Assert.Equal(11, p.Node.CommitIndex);
        Assert.Equal(10, p.Env.Replies.Count);
        Assert.Equal(3, p.Node.Config.InSync.Length);
    }

    [Fact]
    public void An_in_sync_backup_more_than_a_frame_behind_still_gets_the_whole_window()
    {
        var p = StartPrimary(inSync: [P, B1], options: new ServerOptions { MaxBatchEntries = 4, CatchUpBatchEntries = 4, InSyncFramesInFlight = 1 });

        // 20 behind in one flush: five frames of four go at once (the window is for a backup at the log's end).
        p.Batch(n =>
        {
            for (var i = 1; i <= 20; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });

        Assert.Equal([4, 4, 4, 4, 4], p.Env.SentTo<Replicate>(B1).Select(f => f.Entries.Length));
    }

    [Fact]
    public void A_backup_outside_the_in_sync_set_gets_the_catch_up_window_and_an_in_sync_one_the_usual()
    {
        var options = new ServerOptions { MaxBatchEntries = 4, CatchUpBatchEntries = 4, MaxInflightFrames = 2, CatchUpFramesInFlight = 6, CatchUpMaxBytesPerSecond = 0 };
        var p = StartPrimary(inSync: [P, B1], options: options);
        p.Batch(n =>
        {
            for (var i = 1; i <= 40; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });

        // The in-sync backup: MaxInflightFrames full frames before it answers.
        Assert.Equal(2, p.Env.SentTo<Replicate>(B1).Count(f => f.Entries.Length > 0));

        // B2, outside the set, answers the probe from the start of the log: its backlog streams with CatchUpFramesInFlight.
        p.Forget();
        p.AckFrom(B2, 1);
        Assert.Equal(6, p.Env.SentTo<Replicate>(B2).Count(f => f.Entries.Length > 0));
    }
}

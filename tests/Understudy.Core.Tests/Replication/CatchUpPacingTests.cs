using static Understudy.Core.Tests.Replication.ServerHarness;

namespace Understudy.Core.Tests.Replication;

/// <summary>
/// A backup outside the in-sync set copying a backlog is paced (<see cref="ServerOptions.CatchUpMaxBytesPerSecond"/>);
/// the in-sync backups and the clients never wait for the pacer. Time is a fake clock: no test here waits.
/// </summary>
public class CatchUpPacingTests
{
    private const long Rate = 20_000;

    private static readonly ServerOptions Paced = new() { MaxBatchEntries = 4, CatchUpBatchEntries = 16, CatchUpMaxBytesPerSecond = Rate };

    [Fact]
    public void A_catching_up_backup_is_sent_at_most_the_rate_per_interval_and_keeps_getting_it()
    {
        var p = StartBacklog(Paced, out var frame);

        var (bytes, last) = Stream(p, TimeSpan.FromSeconds(1));

        // rate × 1 s, plus the bucket (10 ms of the rate) and one frame (a frame goes whenever the bucket is not empty).
        Assert.True(bytes <= Rate + (Rate / 100) + frame, $"paced catch-up: expected at most {Rate + (Rate / 100) + frame} bytes sent in 1 s at {Rate} B/s, got {bytes}");
        Assert.True(bytes >= Rate - (2 * frame), $"paced catch-up: expected at least {Rate - (2 * frame)} bytes sent in 1 s at {Rate} B/s (it must not starve), got {bytes}");
        Assert.True(last < p.Node.LastIndex, $"paced catch-up: the backlog should outlast 1 s at {Rate} B/s (sent through {last} of {p.Node.LastIndex})");
    }

    [Fact]
    public void Frames_smaller_than_the_bucket_still_get_the_whole_rate()
    {
        // A frame of one entry, far smaller than the bucket (10 ms of the rate): a bucket that held no more than one
        // frame overflowed between two turns and sent a fraction of the rate.
        var p = StartBacklog(Paced with { MaxBatchBytes = 1 }, out var frame);

        var (bytes, _) = Stream(p, TimeSpan.FromSeconds(1));

        Assert.True(frame < Rate / 100, $"fixture: expected a frame ({frame} bytes) smaller than the bucket ({Rate / 100} bytes)");
        Assert.True(bytes >= Rate - (2 * frame), $"paced catch-up of small frames: expected at least {Rate - (2 * frame)} bytes sent in 1 s at {Rate} B/s, got {bytes}");
        Assert.True(bytes <= Rate + (Rate / 100) + frame, $"paced catch-up of small frames: expected at most {Rate + (Rate / 100) + frame} bytes sent in 1 s at {Rate} B/s, got {bytes}");
    }

    [Fact]
    public void Without_a_rate_the_catch_up_is_not_held_back()
    {
        var p = StartBacklog(Paced with { CatchUpMaxBytesPerSecond = 0 }, out _);

        var (bytes, last) = Stream(p, TimeSpan.FromSeconds(1));

        Assert.True(bytes > 5 * Rate, $"unpaced catch-up: expected far more than {Rate} bytes in 1 s, got {bytes}");
        Assert.Equal(p.Node.LastIndex, last);
    }

    [Fact]
    public void Client_writes_go_to_the_in_sync_backup_and_are_answered_in_the_same_turn_while_the_pacer_holds_the_catch_up()
    {
        var p = StartBacklog(Paced, out _);

        // The pacer is in debt after the catch-up's first frame: the next turn sends B2 nothing.
        p.Tick();
        Assert.DoesNotContain(p.Env.SentTo<Replicate>(B2), f => f.Entries.Length > 0);
        p.Forget();

        p.Write(new ClientRef(7), 43, 1, "now");
        var index = p.Node.LastIndex;
        var toB1 = Assert.Single(p.Env.SentTo<Replicate>(B1));
        Assert.Equal(index, toB1.LastIndex);
        Assert.DoesNotContain(p.Env.SentTo<Replicate>(B2), f => f.Entries.Length > 0);

        p.SyncDisk();
        p.AckFrom(B1, index);
        Assert.Equal(ResponseStatus.Ok, Single(p.Env.RepliesTo(new ClientRef(7))).Status);
    }

    [Fact]
    public void A_negative_rate_is_refused_with_what_to_do()
    {
        var e = Assert.Throws<ArgumentException>(() => new ServerOptions { CatchUpMaxBytesPerSecond = -1 }.Validate());
        Assert.Contains("0 (unlimited) or more", e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A primary with B1 in sync and 3000 committed entries, and B2 outside the set, just past its probe: its catch-up
    /// has begun. <paramref name="frame"/> is about the bytes of one catch-up frame.
    /// </summary>
    private static ServerHarness StartBacklog(ServerOptions options, out long frame)
    {
        var p = StartPrimary(inSync: [P, B1], options: options);
        p.Batch(n =>
        {
            for (var i = 1; i <= 3000; i++)
            {
                n.Handle(new ClientRef(i), new ClientRequest(42, i, 1, RequestKind.Write, MessageStoreCommands.Append($"m{i}")));
            }
        });
        p.SyncDisk();

        // B1 answers every frame until it has been sent the whole log: nothing of it is outstanding afterwards.
        for (var round = 0; round < 1000; round++)
        {
            var frames = p.Env.SentTo<Replicate>(B1).Where(f => f.Entries.Length > 0).ToList();
            p.Forget();
            if (frames.Count == 0)
            {
                break;
            }

            p.AckFrom(B1, frames.Max(f => f.LastIndex));
        }

        Assert.Equal(p.Node.LastIndex, p.Node.CommitIndex);

        // B2 answers the probe from the start of the log: the primary streams the backlog from there.
        p.AckFrom(B2, 1);
        var first = p.Env.SentTo<Replicate>(B2).Where(f => f.Entries.Length > 0).ToList();
        Assert.NotEmpty(first);
        frame = first.Max(f => Bytes(f));
        p.Forget();
        return p;
    }

    /// <summary>Time passes in 10 ms ticks; both backups answer all they were sent. Returns B2's entry bytes and its last index.</summary>
    private static (long Bytes, long Last) Stream(ServerHarness p, TimeSpan duration)
    {
        long bytes = 0;
        long last = 0;
        var step = TimeSpan.FromMilliseconds(10);

        // What the primary sent B2 since the last call; the recording is then cleared.
        void Count()
        {
            foreach (var f in p.Env.SentTo<Replicate>(B2).Where(f => f.Entries.Length > 0))
            {
                bytes += Bytes(f);
                last = Math.Max(last, f.LastIndex);
            }

            p.Forget();
        }

        for (var elapsed = TimeSpan.Zero; elapsed < duration; elapsed += step)
        {
            p.Time.Advance(step);
            p.HeartbeatAck();
            p.Tick();
            Count();
            p.AckFrom(B1, p.Node.LastIndex);
            if (last > 0)
            {
                p.AckFrom(B2, last);
            }

            Count();
        }

        return (bytes, last);
    }

    private static long Bytes(Replicate frame)
    {
        long bytes = 0;
        foreach (var e in frame.Entries.Span)
        {
            bytes += e.WireSize;
        }

        return bytes;
    }
}

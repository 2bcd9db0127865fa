namespace Understudy.Core.Tests.Replication;

/// <summary>
/// A backup catching up from below the primary's window is sent the archive's entries in their wire encoding
/// (<see cref="EncodedEntries"/>, as the segment files hand them over) rather than decoded and encoded again: it must end
/// with the primary's log exactly, through a lost frame and a broken connection, and the pacer must count those bytes.
/// </summary>
public class EncodedCatchUpTests
{
    private const int Writes = 3000;

    // An array this large goes to the large object heap, which the collector does not compact.
    private const int LargeObjectHeapThreshold = 85_000;

    // A one-entry window: everything committed is read back from the archive. No snapshots: the log stays whole.
    private static readonly ServerOptions Options = new() { LogWindowEntries = 1, LogWindowBytes = 1024, MaxBatchEntries = 32, CatchUpBatchEntries = 128, SnapshotEveryEntries = 0 };

    [Fact]
    public void A_backlog_read_from_the_archive_is_shipped_encoded_and_the_backup_ends_with_the_primary_s_log()
    {
        var (p, b) = Backlog();

        CatchUp(p, b, dropFrame: _ => false);

        var encoded = p.Env.SentTo<Replicate>(B1).Where(f => f.Encoded.Count > 0).ToList();
        // Everything below the window went encoded; the window's own entries (the last chunk) went as entries.
        var belowWindow = p.Node.Log.WindowStart - 1;
        Assert.True(encoded.Sum(f => (long)f.Encoded.Count) >= belowWindow, $"catch-up from the archive: expected the {belowWindow} entries below the window sent encoded, got {encoded.Sum(f => (long)f.Encoded.Count)} in {encoded.Count} frames");
        Assert.All(encoded, f => Assert.Equal(0, f.Entries.Length));
        AssertSameLog(p, b);
    }

    [Fact]
    public void A_lost_encoded_frame_is_sent_again_and_the_backup_still_ends_with_the_primary_s_log()
    {
        var (p, b) = Backlog();
        var seen = 0;

        // The fifth encoded frame never arrives: the next one does not match, and the primary steps back to it.
        CatchUp(p, b, dropFrame: f => f.Encoded.Count > 0 && ++seen == 5);

        Assert.True(seen > 5, $"lost frame: expected more than 5 encoded frames, saw {seen}");
        AssertSameLog(p, b);
    }

    [Fact]
    public void A_connection_broken_in_the_middle_of_the_backlog_resumes_where_the_backup_is()
    {
        var (p, b) = Backlog();
        var seen = 0;
        var broken = false;

        // From the fourth encoded frame on, nothing arrives until the primary hears the connection went.
        CatchUp(p, b, dropFrame: f =>
        {
            if (broken || f.Encoded.Count == 0 || ++seen < 4)
            {
                return false;
            }

            broken = true;
            p.Input(n => n.OnPeerConnectionLost(B1));
            return true;
        });

        Assert.True(broken, "broken connection: the catch-up ended before its fourth encoded frame");
        AssertSameLog(p, b);
    }

    [Fact]
    public void With_the_default_frame_size_no_catch_up_frame_reaches_the_large_object_heap()
    {
        // The product's frame limits, with a one-entry window so the whole backlog is read back from the archive. The
        // 3000 small writes are about 100 KB: one frame under the old 1 MiB limit, which went to the large object heap.
        var defaults = new ServerOptions { LogWindowEntries = 1, LogWindowBytes = 1024, SnapshotEveryEntries = 0 };
        var (p, b) = Backlog(defaults);

        CatchUp(p, b, dropFrame: _ => false);

        var frames = p.Env.SentTo<Replicate>(B1).Where(f => f.EntryCount > 0).ToList();
        Assert.True(frames.Count > 1, $"default frame size: expected the backlog in several frames, got {frames.Count}");
        var largest = frames.Max(f => MessageCodec.HeaderSize + f.Size);
        Assert.True(largest < LargeObjectHeapThreshold, $"default frame size: expected every catch-up frame under {LargeObjectHeapThreshold} bytes (the large object heap's threshold), the largest was {largest}");
        AssertSameLog(p, b);
    }

    [Fact]
    public void The_pacer_counts_the_encoded_bytes()
    {
        var (p, b) = Backlog(Options with { CatchUpMaxBytesPerSecond = 20_000 });

        // One round: the first frames drain the bucket (10 ms of the rate), then the pacer holds the rest back.
        p.Tick();
        Network.Pump(p, b);
        var sent = p.Env.SentTo<Replicate>(B1).Sum(f => (long)f.Encoded.Bytes.Length);
        Assert.True(sent < 20_000, $"paced encoded catch-up: expected under one second's rate (20000 bytes) sent at once, got {sent}");
        Assert.True(b.Node.LastIndex < p.Node.LastIndex, $"paced encoded catch-up: the backlog should not all go at once (backup at {b.Node.LastIndex} of {p.Node.LastIndex})");
    }

    /// <summary>A primary alone in its in-sync set with <see cref="Writes"/> committed writes all on disk, and an empty backup B1.</summary>
    private static (ServerHarness Primary, ServerHarness Backup) Backlog(ServerOptions? options = null)
    {
        var p = SnapshotTests.Primary(Writes, options ?? Options, disk: new ListLogArchive { Encodes = true });
        Assert.True(p.Node.Log.WindowStart > 2000, $"fixture: the window should start near the end, starts at {p.Node.Log.WindowStart}");

        // What went to B1 before it existed (its first entries, from the window) is lost: it starts from nothing.
        p.TakeOutbox();
        return (p, new ServerHarness(B1, options ?? Options, disk: new ListLogArchive()));
    }

    /// <summary>Ticks the primary and carries messages both ways (minus the frames <paramref name="dropFrame"/> picks) until the backup has the log.</summary>
    private static void CatchUp(ServerHarness p, ServerHarness b, Func<Replicate, bool> dropFrame)
    {
        for (var round = 0; round < 2000 && b.Node.LastIndex < p.Node.LastIndex; round++)
        {
            p.Advance(TimeSpan.FromMilliseconds(10), renewLease: true);
            for (var moved = true; moved;)
            {
                moved = b.SyncDisk();
                foreach (var sent in p.TakeOutbox().Where(s => s.To == B1))
                {
                    if (sent.Message is Replicate frame && !dropFrame(frame))
                    {
                        b.Deliver(frame);
                        moved = true;
                    }
                }

                moved |= b.SyncDisk();
                foreach (var sent in b.TakeOutbox())
                {
                    if (sent.Message is ReplicateAck ack)
                    {
                        p.Deliver(ack);
                        moved = true;
                    }
                }
            }
        }

        Assert.True(b.Node.LastIndex == p.Node.LastIndex, $"catch-up: expected the backup at {p.Node.LastIndex} after 2000 rounds, it is at {b.Node.LastIndex}");
    }

    private static void AssertSameLog(ServerHarness p, ServerHarness b)
    {
        var expected = p.Node.Log.Range(1, p.Node.LastIndex).Select(Describe).ToList();
        var actual = b.Node.Log.Range(1, b.Node.LastIndex).Select(Describe).ToList();
        Assert.Equal(expected, actual);
    }

    private static string Describe(LogEntry e) =>
        $"{e.Index}@{e.Epoch} {e.Kind} {e.ClientId}/{e.RequestSeq}/{e.FirstIncomplete} t{e.LogTimeMs} {Convert.ToHexString(e.Command.Span)}";
}

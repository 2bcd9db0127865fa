using System.Runtime.InteropServices;
using Understudy.Protocol;

namespace Understudy.Storage.Tests;

/// <summary>
/// Reading entries back in their wire encoding (<see cref="DurableLog.ReadEncoded(long, int, int)"/>), what a primary ships a backup
/// catching up: the same entries and bounds as <see cref="DurableLog.Read"/>, and a damaged record refused, never shipped.
/// </summary>
public sealed class EncodedReadTests : IDisposable
{
    private const int CommandSize = 8;
    private const int RecordSize = LogRecord.HeaderSize + LogRecord.FixedPayloadSize + CommandSize;
    private readonly TempFolder _folder = new();
    private readonly SyncRecorder _synced = new();

    public void Dispose() => _folder.Dispose();

    private DurableLog Open(long segmentSize, long recoverFrom = 1) =>
        DurableLog.Open(_folder.Path, new DurableLogOptions { SegmentSize = segmentSize, FsyncPolicy = FsyncPolicy.Never, Synced = _synced.OnSynced }, recoverFrom);

    private async Task<LogEntry[]> WriteAsync(DurableLog log, long first, long last)
    {
        var entries = Entries.Range(first, last, 1, CommandSize);
        log.Append(entries);
        log.RequestSync(last, 1);
        await _synced.WaitForAsync(last, 1);
        return entries;
    }

    [Fact]
    public async Task An_encoded_read_is_the_wire_encoding_of_what_Read_returns_across_segments_and_within_its_bounds()
    {
        // 4 KiB segments hold 59 records: 2000 entries are 34 segments.
        await using var log = Open(segmentSize: 4096);
        var entries = await WriteAsync(log, 1, 2000);

        foreach (var (from, count, bytes) in new (long, int, int)[] { (1, 2000, 1024 * 1024), (58, 3, 1024 * 1024), (59, 200, 1024 * 1024), (10, 100, 3 * RecordSize), (10, 100, 1), (2000, 10, 1024) })
        {
            var run = log.ReadEncoded(from, count, bytes);
            var read = log.Read(from, count, bytes);
            Assert.Equal(read.Length, run.Count);
            Assert.Equal(Convert.ToHexString(EncodedEntries.Of(read).Bytes.Span), Convert.ToHexString(run.Bytes.Span));
            Entries.AssertSame(entries[(int)(from - 1)..(int)(from - 1 + run.Count)], run.Decode(from));
        }

        // Past the end: nothing, not an error.
        Assert.Equal(0, log.ReadEncoded(2001, 10, 1024).Count);
    }

    [Fact]
    public async Task An_encoded_read_into_a_reused_buffer_gives_the_same_bytes_in_that_buffer_and_grows_it_when_needed()
    {
        // A primary's catch-up reads each frame into one buffer (no new 1 MiB array per frame), sent before the next read.
        await using var log = Open(segmentSize: 4096);
        await WriteAsync(log, 1, 2000);
        var buffer = Array.Empty<byte>();
        byte[]? kept = null;
        foreach (var (from, count, bytes) in new (long, int, int)[] { (1, 2000, 1024 * 1024), (58, 3, 1024 * 1024), (10, 100, 3 * RecordSize), (10, 100, 1), (1990, 50, 1024 * 1024) })
        {
            var expected = log.ReadEncoded(from, count, bytes);
            var run = log.ReadEncoded(from, count, bytes, ref buffer);
            Assert.Equal(expected.Count, run.Count);
            Assert.Equal(Convert.ToHexString(expected.Bytes.Span), Convert.ToHexString(run.Bytes.Span));
            Assert.True(MemoryMarshal.TryGetArray(run.Bytes, out var segment) && ReferenceEquals(segment.Array, buffer), "the run is in the caller's buffer");
            kept ??= buffer;
            Assert.Same(kept, buffer);
        }

        // One record larger than the buffer: a larger buffer replaces it, and holds the record whole.
        var large = Entries.Range(2001, 2001, 1, commandSize: 3 * 1024 * 1024);
        log.Append(large);
        log.RequestSync(2001, 2);
        await _synced.WaitForAsync(2001, 2);
        var big = log.ReadEncoded(2001, 1, 1024, ref buffer);
        Assert.NotSame(kept, buffer);
        Assert.True(buffer.Length >= big.Bytes.Length);
        Entries.AssertSame(large, big.Decode(2001));
    }

    [Fact]
    public async Task A_damaged_record_in_the_range_is_refused_with_where_it_is_and_nothing_is_handed_over()
    {
        await using (var log = Open(segmentSize: 2048))
        {
            await WriteAsync(log, 1, 300);
        }

        // Flip a byte inside entry 40's record (the second segment holds 30..58); open from the tail, which skips it.
        var second = _folder.File(_folder.Segments()[1]);
        var bytes = await File.ReadAllBytesAsync(second, TestContext.Current.CancellationToken);
        bytes[(RecordSize * 10) + 30] ^= 0xFF;
        await File.WriteAllBytesAsync(second, bytes, TestContext.Current.CancellationToken);
        await using var tail = Open(segmentSize: 2048, recoverFrom: 200);

        var damaged = Assert.Throws<StorageException>(() => tail.ReadEncoded(35, 10, 1024 * 1024));
        Assert.Contains("00000000000000000030.v2.log", damaged.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', damaged.Message);

        // The segments around it still read.
        Assert.Equal(29, tail.ReadEncoded(1, 29, 1024 * 1024).Count);
        Assert.Equal(50, tail.ReadEncoded(101, 50, 1024 * 1024).Count);
    }
}

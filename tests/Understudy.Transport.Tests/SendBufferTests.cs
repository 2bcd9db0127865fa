using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;

namespace Understudy.Transport.Tests;

/// <summary>
/// <see cref="SendBuffer"/> writes every frame in order, whatever its size, and a frame larger than a chunk takes its
/// array from the process's own bounded pool: however many threads give them back, a catch-up reuses a few arrays
/// rather than leaving one behind in every thread.
/// </summary>
public class SendBufferTests
{
    private const int Large = 800 * 1024;

    [Fact]
    public async Task Small_and_large_frames_are_written_in_order()
    {
        var buffer = new SendBuffer(ArrayPool<byte>.Create(SendBuffer.MaxLargeChunk, SendBuffer.LargeChunksKept));
        var frames = new[] { 100, Large, 200, 70 * 1024, SendBuffer.ChunkSize, 300, SendBuffer.MaxLargeChunk + 1 }
            .Select((size, i) => Frame(size, (byte)(i + 1)))
            .ToArray();
        foreach (var frame in frames)
        {
            Write(buffer, frame);
        }

        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        await buffer.WriteToAsync(pipe.Writer, TestContext.Current.CancellationToken);
        await pipe.Writer.CompleteAsync();
        var read = await pipe.Reader.ReadAtLeastAsync(int.MaxValue / 2, TestContext.Current.CancellationToken);
        Assert.Equal(frames.SelectMany(f => f).ToArray(), read.Buffer.ToArray());
        pipe.Reader.AdvanceTo(read.Buffer.End);
        buffer.Reset();
    }

    [Fact]
    public async Task A_catch_up_given_back_on_many_threads_reuses_a_bounded_set_of_arrays()
    {
        // As a connection runs: frames encoded on one thread, the batch written and reset on whichever thread runs the
        // writer. With the shared pool each of those threads kept an array of its own.
        var large = ArrayPool<byte>.Create(SendBuffer.MaxLargeChunk, SendBuffer.LargeChunksKept);
        var seen = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        var buffers = new[] { new SendBuffer(large), new SendBuffer(large) };
        for (var round = 0; round < 40; round++)
        {
            var batch = buffers[round % 2];
            seen.Add(Write(batch, Frame(Large, 1)));
            seen.Add(Write(batch, Frame(Large - (round * 1000), 2)));
            await Task.Factory.StartNew(batch.Reset, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        Assert.True(seen.Count <= 2, $"40 batches of two large frames, each batch given back on a thread of its own, used {seen.Count} distinct arrays; expected at most 2 (the two in flight at once)");
    }

    [Fact]
    public void Large_frames_do_not_take_arrays_from_the_shared_pool()
    {
        var large = new CountingPool();
        var buffer = new SendBuffer(large);
        Write(buffer, Frame(100, 1));
        Write(buffer, Frame(Large, 2));
        Write(buffer, Frame(SendBuffer.ChunkSize + 1, 3));
        buffer.Reset();
        Assert.Equal(2, large.Rented);
        Assert.Equal(2, large.Returned);
    }

    private static byte[] Frame(int size, byte fill)
    {
        var frame = new byte[size];
        frame.AsSpan().Fill(fill);
        frame[0] = (byte)(size >> 16);
        frame[^1] = (byte)size;
        return frame;
    }

    /// <summary>Writes <paramref name="frame"/> as a connection does (one contiguous span); returns the array it went into.</summary>
    private static byte[] Write(SendBuffer buffer, byte[] frame)
    {
        var memory = buffer.GetMemory(frame.Length);
        frame.CopyTo(memory.Span);
        buffer.Advance(frame.Length);
        Assert.True(MemoryMarshal.TryGetArray<byte>(memory, out var segment));
        return segment.Array!;
    }

    private sealed class CountingPool : ArrayPool<byte>
    {
        public int Rented { get; private set; }

        public int Returned { get; private set; }

        public override byte[] Rent(int minimumLength)
        {
            Rented++;
            return new byte[minimumLength];
        }

        public override void Return(byte[] array, bool clearArray = false) => Returned++;
    }
}

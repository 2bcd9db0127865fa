using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// Signs or checks the frames of one direction of one authenticated connection. Every frame after the
/// Hellos carries a trailer inside its length: a counter (u64, starting at 1, rising by one per frame)
/// and the first 16 bytes of HMAC-SHA256(key, receiver's Hello nonce ‖ sender address ‖ counter ‖ frame),
/// where the frame is its length prefix, type and body. The receiver's nonce is fresh per connection, so a
/// frame recorded on one connection fails on any other; the counter stops replays within one.
/// Not thread-safe: the sending side is used under the send lock, the receiving side by the read loop.
/// </summary>
internal sealed class FrameAuthenticator : IDisposable
{
    public const int CounterSize = 8;
    public const int MacSize = 16;
    public const int TrailerSize = CounterSize + MacSize;

    /// <summary>Shorter keys are refused: a guessable key authenticates nothing.</summary>
    public const int MinimumKeyLength = 16;

    private readonly IncrementalHash _hmac;
    private readonly byte[] _prefix;
    private ulong _counter;

    /// <param name="key">The cluster key.</param>
    /// <param name="receiverNonce">The nonce from the Hello of the side that receives these frames.</param>
    /// <param name="sender">The address from the Hello of the side that sends them.</param>
    public FrameAuthenticator(ReadOnlySpan<byte> key, ulong receiverNonce, NodeAddress sender)
    {
        _hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        _prefix = new byte[8 + WireWriter.SizeOf(sender)];
        BinaryPrimitives.WriteUInt64LittleEndian(_prefix, receiverNonce);
        var w = new WireWriter(_prefix.AsSpan(8));
        w.WriteAddress(sender);
    }

    /// <summary>The last counter signed or accepted.</summary>
    public ulong Counter => _counter;

    /// <summary>Signs the next frame: <paramref name="frame"/> already holds the length with the trailer counted.</summary>
    public void Sign(ReadOnlySpan<byte> frame, Span<byte> trailer)
    {
        _counter++;
        BinaryPrimitives.WriteUInt64LittleEndian(trailer, _counter);
        _hmac.AppendData(_prefix);
        _hmac.AppendData(trailer[..CounterSize]);
        _hmac.AppendData(frame);
        Finish(trailer.Slice(CounterSize, MacSize));
    }

    /// <summary>
    /// Checks a received frame (length, type and body without the trailer) against its trailer.
    /// Returns null when it is authentic and new, else why not.
    /// </summary>
    public string? Verify(in ReadOnlySequence<byte> frame, in ReadOnlySequence<byte> trailer)
    {
        Span<byte> received = stackalloc byte[TrailerSize];
        trailer.CopyTo(received);
        var counter = BinaryPrimitives.ReadUInt64LittleEndian(received);

        _hmac.AppendData(_prefix);
        _hmac.AppendData(received[..CounterSize]);
        foreach (var segment in frame)
        {
            _hmac.AppendData(segment.Span);
        }

        Span<byte> expected = stackalloc byte[MacSize];
        Finish(expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, received.Slice(CounterSize, MacSize)))
        {
            return $"frame {counter} has a wrong MAC: the peer does not hold this cluster's key, or the frame was altered or recorded on another connection";
        }

        if (counter <= _counter)
        {
            return $"frame counter {counter} does not increase (last accepted {_counter}): a replayed frame";
        }

        _counter = counter;
        return null;
    }

    private void Finish(Span<byte> mac)
    {
        Span<byte> full = stackalloc byte[HMACSHA256.HashSizeInBytes];
        _hmac.GetHashAndReset(full);
        full[..MacSize].CopyTo(mac);
    }

    /// <summary>
    /// A whole authenticated frame for <paramref name="message"/> as bytes (tests forge and replay these).
    /// </summary>
    public byte[] Seal<T>(in T message)
        where T : IMessage
    {
        var frame = new byte[MessageCodec.HeaderSize + message.Size + TrailerSize];
        var writer = new ArrayBufferWriter<byte>(frame.Length);
        MessageCodec.Write(writer, message);
        writer.WrittenSpan.CopyTo(frame);
        var unsigned = writer.WrittenCount;
        BinaryPrimitives.WriteInt32LittleEndian(frame, frame.Length - 4);
        Sign(frame.AsSpan(0, unsigned), frame.AsSpan(unsigned));
        return frame;
    }

    public void Dispose() => _hmac.Dispose();
}

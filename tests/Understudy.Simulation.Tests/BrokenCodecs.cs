using System.Buffers;
using Understudy.Protocol;

namespace Understudy.Simulation.Tests;

/// <summary>
/// The real codec, except that a <see cref="Replicate"/> frame carries 0 for each entry's client id, as an
/// encoder that forgot the field would: backups then hold entries the primary does not, and their
/// deduplication tables lose track of who wrote what.
/// </summary>
internal sealed class DropsEntryClientIdCodec : IFrameCodec
{
    public void Encode<T>(IBufferWriter<byte> writer, in T message)
        where T : IMessage
    {
        if (message is Replicate sent)
        {
            // A backlog read from disk is sent encoded: break it the same way.
            var frame = sent.Decoded();
            var entries = frame.Entries.ToArray();
            for (var i = 0; i < entries.Length; i++)
            {
                entries[i] = entries[i] with { ClientId = 0 };
            }

            FrameCodec.Instance.Encode(writer, frame with { Entries = entries });
            return;
        }

        FrameCodec.Instance.Encode(writer, message);
    }

    public IMessage Decode(ReadOnlyMemory<byte> frame) => FrameCodec.Instance.Decode(frame);
}

/// <summary>
/// The real codec, except that a <see cref="Replicate"/> frame whose entries were read back from disk encoded carries
/// the run one entry late (the reader's offset off by one record, its last entry repeated to keep the count): every
/// entry well-formed, at the right count, but each index holding the next one's content.
/// </summary>
internal sealed class ShiftsEncodedRunCodec : IFrameCodec
{
    public void Encode<T>(IBufferWriter<byte> writer, in T message)
        where T : IMessage
    {
        if (message is Replicate { Encoded.Count: > 1 } frame)
        {
            var entries = frame.Decoded().Entries.ToArray();
            LogEntry[] shifted = [.. entries[1..], entries[^1]];
            FrameCodec.Instance.Encode(writer, new Replicate(frame.Epoch, frame.From, frame.PrevIndex, frame.PrevEpoch, frame.CommitIndex, frame.SentAt, EncodedEntries.Of(shifted)));
            return;
        }

        FrameCodec.Instance.Encode(writer, message);
    }

    public IMessage Decode(ReadOnlyMemory<byte> frame) => FrameCodec.Instance.Decode(frame);
}

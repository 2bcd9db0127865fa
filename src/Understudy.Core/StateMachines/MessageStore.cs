using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines;

/// <summary>One message of the store, with the sequence number it was acknowledged with.</summary>
public readonly record struct SequencedMessage(long Seq, string Text);

/// <summary>
/// The original project's service, and the default state machine: clients send messages; each gets the next
/// sequence number (from 1). Not to be confused with the replicated log of entries it is built from: a message
/// is the payload of one committed command entry, and its sequence number is not the entry's index.
/// Messages can be read back by range, and counted (the original's <c>messageCount</c>).
/// </summary>
/// <remarks>
/// The store's data is the log itself, as in Kafka: it keeps no message text, only where each message sits in the
/// log, as runs of consecutive messages at consecutive log indices (a run ends at any entry that is not a new
/// message: an epoch's first entry, a retried write deduplication refused). Text is read back through the
/// <see cref="ILogReader"/> the node attaches. Its snapshot is the runs and counters, a few bytes per run.
/// Retention (<see cref="MessageRetention"/>) moves the first retained message forward as messages are applied,
/// from the log alone, so every replica decides the same; the log may then be compacted below it.
/// Without an attached log (a store used on its own, in tests) it records the commands it applies in memory.
/// </remarks>
public sealed class MessageStore : ILogBackedStateMachine
{
    /// <summary>Longest message accepted, in UTF-8 bytes.</summary>
    public const int MaxMessageBytes = 1024 * 1024;

    private readonly List<Run> _runs = [];
    private readonly MessageRetention _retention;
    private ILogReader _log;
    private AppliedCommands? _applied;
    private long _count;
    private long _firstRetained = 1;
    private long _retainedBytes;

    // The log time of the first retained message, once retention by age has read it (-1: not known). Derived from
    // the log, so it is not part of the snapshot: a restored store reads it again.
    private long _firstRetainedTimeMs = -1;

    public MessageStore()
        : this(MessageRetention.KeepEverything)
    {
    }

    public MessageStore(MessageRetention retention)
    {
        retention.Validate();
        _retention = retention;
        _applied = new AppliedCommands();
        _log = _applied;
    }

    /// <summary>Messages ever stored (the last sequence number), retained or not.</summary>
    public long Count => _count;

    /// <summary>The first message still held; earlier ones were removed by retention.</summary>
    public long FirstRetained => _firstRetained;

    /// <summary>Runs in the index (what the store's memory grows with, besides nothing).</summary>
    public int RunCount => _runs.Count;

    /// <inheritdoc />
    /// <remarks>Until retention has removed a message, the whole log is kept (entries before the first message too).</remarks>
    public long RetainedFromIndex => _firstRetained == 1 ? 1 : _firstRetained > _count ? long.MaxValue : IndexOf(_firstRetained);

    /// <summary>The message with sequence number <paramref name="seq"/> (from 1).</summary>
    public string this[long seq]
    {
        get
        {
            if (seq < _firstRetained || seq > _count)
            {
                throw new ArgumentOutOfRangeException(nameof(seq), seq, $"messages held: {_firstRetained}..{_count}");
            }

            var entry = _log.Read(IndexOf(seq), 1, int.MaxValue);
            return MessageStoreCommands.DecodeAppendText(entry[0].Command.Span);
        }
    }

    /// <inheritdoc />
    public void AttachLog(ILogReader log)
    {
        _log = log;
        _applied = null;
    }

    /// <inheritdoc />
    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context)
    {
        var index = context.Index;
        if (MessageStoreCommands.TryDecodeAppend(command, out var text))
        {
            _count++;
            if (_runs.Count > 0 && _runs[^1].FirstIndex + _runs[^1].Length == index)
            {
                _runs[^1] = _runs[^1] with { Length = _runs[^1].Length + 1 };
            }
            else
            {
                _runs.Add(new Run(_count, index, 1));
            }

            _applied?.Record(index, command, context.LogTimeMs);
            _retainedBytes += text.Length;
            ApplyRetention(context.LogTimeMs);
            return MessageStoreCommands.EncodeSeq(_count);
        }

        // Validate() keeps these out of the log; a log written by a newer version could still hold one.
        return MessageStoreCommands.EncodeSeq(0);
    }

    /// <inheritdoc />
    public string? Validate(ReadOnlySpan<byte> command)
    {
        if (!MessageStoreCommands.TryDecodeAppend(command, out var text))
        {
            return "not a message-store append command";
        }

        return text.Length > MaxMessageBytes ? $"message of {text.Length} bytes is over the limit of {MaxMessageBytes}" : null;
    }

    /// <inheritdoc />
    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query)
    {
        if (query.Length >= 1 && query[0] == MessageStoreCommands.CountOp)
        {
            return MessageStoreCommands.EncodeSeq(_count);
        }

        if (query.Length == 17 && query[0] == MessageStoreCommands.ReadOp)
        {
            var from = Math.Max(1, BinaryPrimitives.ReadInt64LittleEndian(query[1..]));
            var count = BinaryPrimitives.ReadInt64LittleEndian(query[9..]);
            if (from < _firstRetained)
            {
                return MessageStoreCommands.EncodeRemoved(_firstRetained);
            }

            var available = Math.Max(0, _count - (from - 1));
            var wanted = (int)Math.Clamp(count, 0, Math.Min(available, MessageStoreCommands.MaxReadCount));
            return MessageStoreCommands.EncodeMessages(from, ReadPage(from, wanted));
        }

        return MessageStoreCommands.EncodeSeq(-1);
    }

    /// <inheritdoc />
    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var size = 8 + 8 + 8 + 4 + (_runs.Count * 24);
        var w = new WireWriter(writer.GetSpan(size));
        w.WriteInt64(_count);
        w.WriteInt64(_firstRetained);
        w.WriteInt64(_retainedBytes);
        w.WriteInt32(_runs.Count);
        foreach (var run in _runs)
        {
            w.WriteInt64(run.FirstSeq);
            w.WriteInt64(run.FirstIndex);
            w.WriteInt64(run.Length);
        }

        writer.Advance(size);
    }

    /// <inheritdoc />
    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        _runs.Clear();
        var r = new WireReader(snapshot, "message-store snapshot");
        _count = r.ReadInt64("count");
        _firstRetained = r.ReadInt64("firstRetained");
        _retainedBytes = r.ReadInt64("retainedBytes");
        var runs = r.ReadCount("runs", 24);
        for (var i = 0; i < runs; i++)
        {
            _runs.Add(new Run(r.ReadInt64("run.firstSeq"), r.ReadInt64("run.firstIndex"), r.ReadInt64("run.length")));
        }

        r.End();
        _firstRetainedTimeMs = -1;
    }

    /// <summary>All retained messages, in order (tests and the simulator's final check).</summary>
    public IReadOnlyList<SequencedMessage> ToList()
    {
        var all = new List<SequencedMessage>();
        var next = _firstRetained;
        while (next <= _count)
        {
            var page = ReadPage(next, (int)Math.Min(MessageStoreCommands.MaxReadCount, _count - next + 1));
            foreach (var text in page)
            {
                all.Add(new SequencedMessage(next++, Encoding.UTF8.GetString(text.Span)));
            }
        }

        return all;
    }

    /// <summary>Up to <paramref name="wanted"/> message texts from <paramref name="from"/>, within <see cref="MessageStoreCommands.MaxReadBytes"/> (but at least one).</summary>
    private List<ReadOnlyMemory<byte>> ReadPage(long from, int wanted)
    {
        var texts = new List<ReadOnlyMemory<byte>>();
        var bytes = 0L;
        var seq = from;
        while (texts.Count < wanted)
        {
            var run = _runs[RunOf(seq)];
            var inRun = (int)Math.Min(wanted - texts.Count, run.FirstSeq + run.Length - seq);
            var entries = _log.Read(run.FirstIndex + (seq - run.FirstSeq), inRun, MessageStoreCommands.MaxReadBytes);
            if (entries.Length == 0)
            {
                throw new InvalidOperationException($"message {seq} is not in the log (log index {run.FirstIndex + (seq - run.FirstSeq)}, first readable {_log.FirstIndex})");
            }

            foreach (var entry in entries)
            {
                var text = entry.Command[1..];
                bytes += text.Length;
                if (bytes > MessageStoreCommands.MaxReadBytes && texts.Count > 0)
                {
                    return texts;
                }

                texts.Add(text);
                seq++;
            }
        }

        return texts;
    }

    /// <summary>
    /// Moves the first retained message forward until what is left keeps the promise (deterministic: counts, bytes and
    /// log times from the log; <paramref name="logTimeMs"/> is the time of the entry being applied, the newest).
    /// </summary>
    private void ApplyRetention(long logTimeMs)
    {
        if (_retention.MaxAge is { } age)
        {
            DropOlderThan(logTimeMs - (long)age.TotalMilliseconds);
        }

        if (_retention.Messages is { } keep && _count - _firstRetained + 1 > keep)
        {
            Drop(_count - _firstRetained + 1 - keep);
        }

        if (_retention.Bytes is { } maxBytes)
        {
            while (_retainedBytes > maxBytes && _firstRetained <= _count)
            {
                Drop(1);
            }
        }

        // Runs wholly below the first retained message are no longer needed.
        var gone = 0;
        while (gone < _runs.Count - 1 && _runs[gone].FirstSeq + _runs[gone].Length <= _firstRetained)
        {
            gone++;
        }

        if (gone > 0)
        {
            _runs.RemoveRange(0, gone);
        }
    }

    /// <summary>
    /// Removes the messages whose log time is below <paramref name="horizonMs"/>. Log time never decreases along the log,
    /// so they are a prefix of the retained ones; the newest message (just applied) is never among them.
    /// </summary>
    private void DropOlderThan(long horizonMs)
    {
        if (_firstRetained > _count || (_firstRetainedTimeMs >= 0 && _firstRetainedTimeMs >= horizonMs))
        {
            return;
        }

        var old = 0L;
        var firstKeptTime = -1L;
        var seq = _firstRetained;
        while (seq <= _count && firstKeptTime < 0)
        {
            var run = _runs[RunOf(seq)];
            var n = (int)Math.Min(4096, run.FirstSeq + run.Length - seq);
            var entries = _log.Read(run.FirstIndex + (seq - run.FirstSeq), n, 4 * 1024 * 1024);
            if (entries.Length == 0)
            {
                throw new InvalidOperationException($"message {seq} is not in the log (log index {run.FirstIndex + (seq - run.FirstSeq)}, first readable {_log.FirstIndex})");
            }

            foreach (var e in entries)
            {
                if (e.LogTimeMs >= horizonMs)
                {
                    firstKeptTime = e.LogTimeMs;
                    break;
                }

                old++;
                seq++;
            }
        }

        if (old > 0)
        {
            Drop(old);
        }

        _firstRetainedTimeMs = firstKeptTime;
    }

    private void Drop(long messages)
    {
        _firstRetainedTimeMs = -1;
        var through = _firstRetained + messages - 1;
        if (_retention.Bytes is not null)
        {
            // Byte accounting needs each dropped message's size: read them back (they are still in the log).
            var seq = _firstRetained;
            while (seq <= through)
            {
                var run = _runs[RunOf(seq)];
                var n = (int)Math.Min(through - seq + 1, run.FirstSeq + run.Length - seq);
                var entries = _log.Read(run.FirstIndex + (seq - run.FirstSeq), Math.Min(n, 4096), 4 * 1024 * 1024);
                foreach (var e in entries)
                {
                    _retainedBytes -= e.Command.Length - 1;
                }

                seq += entries.Length;
            }
        }

        _firstRetained = through + 1;
        _applied?.ForgetBelow(_firstRetained > _count ? long.MaxValue : IndexOf(_firstRetained));
    }

    private long IndexOf(long seq)
    {
        var run = _runs[RunOf(seq)];
        return run.FirstIndex + (seq - run.FirstSeq);
    }

    /// <summary>The run holding message <paramref name="seq"/> (which must be held).</summary>
    private int RunOf(long seq)
    {
        int lo = 0, hi = _runs.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) / 2;
            if (_runs[mid].FirstSeq <= seq)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }

    /// <summary>Messages <see cref="FirstSeq"/>.. at log indices <see cref="FirstIndex"/>.., <see cref="Length"/> of each.</summary>
    private readonly record struct Run(long FirstSeq, long FirstIndex, long Length);

    /// <summary>The commands a store without an attached log applied, by log index: its stand-in for the log.</summary>
    private sealed class AppliedCommands : ILogReader
    {
        private readonly SortedList<long, LogEntry> _entries = [];

        public long FirstIndex => _entries.Count == 0 ? 1 : _entries.Keys[0];

        public void Record(long index, ReadOnlySpan<byte> command, long logTimeMs) =>
            _entries[index] = new LogEntry(index, 0, EntryKind.Command, 0, 0, 0, command.ToArray(), logTimeMs);

        public void ForgetBelow(long index)
        {
            while (_entries.Count > 0 && _entries.Keys[0] < index)
            {
                _entries.RemoveAt(0);
            }
        }

        public LogEntry[] Read(long from, int maxCount, int maxBytes)
        {
            var result = new List<LogEntry>();
            var bytes = 0;
            for (var i = from; result.Count < maxCount && _entries.TryGetValue(i, out var e); i++)
            {
                result.Add(e);
                bytes += e.WireSize;
                if (bytes >= maxBytes)
                {
                    break;
                }
            }

            return [.. result];
        }
    }
}

using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines.KeyValue;

/// <summary>
/// A replicated key-value store: get, put (with an optional expiry), delete, compare-and-set and increment over
/// byte-string keys and values. Commands and results are laid out by <see cref="KeyValueCommands"/>.
/// </summary>
/// <remarks>
/// <para>
/// Deterministic like every state machine: a key's version is the log index of the entry that last wrote it, and
/// expiry is decided from the log's time (<see cref="ApplyContext.LogTimeMs"/>), never from this replica's clock.
/// A key whose expiry is at or before the log time of the entry being applied is gone before that entry applies;
/// a get (a query) sees the store as of the last applied entry, so expiry by that entry's log time. A key thus
/// outlives its expiry while no entry is logged; what a client sees stays linearizable, as every replica agrees on
/// the moment the key went.
/// </para>
/// <para>
/// A put replaces the key's expiry (none unless it gives one); compare-and-set and increment keep the key's
/// expiry, as Redis's <c>INCR</c> does.
/// </para>
/// <para>The snapshot lists the keys in byte order, so two replicas with the same state write the same bytes.</para>
/// <para>
/// Gets may run on other threads while the loop applies (<see cref="IConcurrentQueries"/>): the keys are in a
/// dictionary safe for one writer and many readers, each key's value, version and expiry is one immutable object
/// replaced whole, and a restore swaps in a new dictionary rather than emptying this one.
/// </para>
/// </remarks>
public sealed class KeyValueStore : IStateMachine, IConcurrentQueries
{
    // Written only on the loop (one writer, so one lock); read lock-free by gets on any thread.
    private volatile ConcurrentDictionary<byte[], Entry> _entries = NewEntries(0);

    // Keys with an expiry, by expiry time. An item is stale when its key was since rewritten or deleted; the
    // entry's own ExpiresAt decides, so stale items are skipped when they come up.
    private readonly PriorityQueue<byte[], long> _expiries = new();

    private long _logTimeMs;

    /// <summary>Keys held (expired keys are removed as the log's time passes them).</summary>
    public int Count => _entries.Count;

    /// <summary>The log time of the last applied entry: what a get's expiry is judged by.</summary>
    public long LogTimeMs => _logTimeMs;

    /// <inheritdoc />
    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context)
    {
        // Log time never decreases along the log; the max only guards a log written without times (zero).
        // Published before the removals and the write: a concurrent get that sees this entry's effects judges expiry
        // by this time or a later one.
        Volatile.Write(ref _logTimeMs, Math.Max(_logTimeMs, context.LogTimeMs));
        RemoveExpired();
        if (!KeyValueCommands.TryDecode(command, out var c, out _) || c.Operation == KeyValueOperation.Get)
        {
            // Validate() keeps these out of the log; a log written by a newer version could still hold one.
            return KeyValueCommands.EncodeResult(KeyValueStatus.Malformed, 0, 0, default);
        }

        var lookup = _entries.GetAlternateLookup<ReadOnlySpan<byte>>();
        switch (c.Operation)
        {
            case KeyValueOperation.Put:
            {
                var expiresAt = c.HasExpiry ? _logTimeMs + c.ExpireAfterMs : 0;
                Store(c.Key, c.Value.ToArray(), context.Index, expiresAt);
                return KeyValueCommands.EncodeResult(KeyValueStatus.Ok, context.Index, 0, default);
            }

            case KeyValueOperation.Delete:
                return lookup.TryRemove(c.Key, out _, out _)
                    ? KeyValueCommands.EncodeResult(KeyValueStatus.Ok, 0, 0, default)
                    : KeyValueCommands.EncodeResult(KeyValueStatus.NotFound, 0, 0, default);

            case KeyValueOperation.CompareAndSet:
            {
                var found = lookup.TryGetValue(c.Key, out var current);
                var matches = c.HasExpected ? found && c.Expected.SequenceEqual(current!.Value) : !found;
                if (!matches)
                {
                    return found
                        ? KeyValueCommands.EncodeResult(KeyValueStatus.Mismatch, current!.Version, 0, current.Value)
                        : KeyValueCommands.EncodeResult(KeyValueStatus.Mismatch, 0, 0, default);
                }

                Store(c.Key, c.Value.ToArray(), context.Index, found ? current!.ExpiresAt : 0);
                return KeyValueCommands.EncodeResult(KeyValueStatus.Ok, context.Index, 0, default);
            }

            case KeyValueOperation.Increment:
            {
                var found = lookup.TryGetValue(c.Key, out var current);
                long before = 0;
                if (found && !TryParseInteger(current!.Value, out before))
                {
                    return KeyValueCommands.EncodeResult(KeyValueStatus.NotAnInteger, current.Version, 0, current.Value);
                }

                long sum;
                try
                {
                    sum = checked(before + c.Delta);
                }
                catch (OverflowException)
                {
                    return KeyValueCommands.EncodeResult(KeyValueStatus.Overflow, current?.Version ?? 0, 0, found ? current!.Value : default);
                }

                var text = FormatInteger(sum);
                Store(c.Key, text, context.Index, found ? current!.ExpiresAt : 0);
                return KeyValueCommands.EncodeResult(KeyValueStatus.Ok, context.Index, sum, text);
            }

            default:
                return KeyValueCommands.EncodeResult(KeyValueStatus.Malformed, 0, 0, default);
        }
    }

    /// <inheritdoc />
    /// <remarks>The only query is a get; anything else answers <see cref="KeyValueStatus.Malformed"/>.</remarks>
    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query)
    {
        if (!KeyValueCommands.TryDecode(query, out var c, out _) || c.Operation != KeyValueOperation.Get)
        {
            return KeyValueCommands.EncodeResult(KeyValueStatus.Malformed, 0, 0, default);
        }

        return TryGet(c.Key, out var entry)
            ? KeyValueCommands.EncodeResult(KeyValueStatus.Ok, entry.Version, 0, entry.Value)
            : KeyValueCommands.EncodeResult(KeyValueStatus.NotFound, 0, 0, default);
    }

    /// <inheritdoc />
    /// <remarks>Refuses anything that is not a well-formed put, delete, compare-and-set or increment within the limits of <see cref="KeyValueCommands"/>.</remarks>
    public string? Validate(ReadOnlySpan<byte> command)
    {
        if (!KeyValueCommands.TryDecode(command, out var c, out var error))
        {
            return error;
        }

        return c.Operation == KeyValueOperation.Get ? "a get is a query, not a command: send it as a read" : null;
    }

    /// <inheritdoc />
    /// <remarks>The same answer as <see cref="Query"/>: a get reads one key's immutable entry and the log time, both safe to read while the loop applies.</remarks>
    public ReadOnlyMemory<byte> QueryConcurrently(ReadOnlySpan<byte> query) => Query(query);

    /// <summary>The value of <paramref name="key"/>, as a get sees it (tests and the simulator's final check).</summary>
    public bool TryGetValue(ReadOnlySpan<byte> key, out ReadOnlyMemory<byte> value)
    {
        if (TryGet(key, out var entry))
        {
            value = entry.Value;
            return true;
        }

        value = default;
        return false;
    }

    /// <inheritdoc />
    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var head = new WireWriter(writer.GetSpan(12));
        head.WriteInt64(_logTimeMs);
        head.WriteInt32(_entries.Count);
        writer.Advance(12);

        var keys = _entries.Keys.ToArray();
        Array.Sort(keys, static (a, b) => a.AsSpan().SequenceCompareTo(b));
        foreach (var key in keys)
        {
            var entry = _entries[key];
            var size = WireWriter.SizeOf(key) + WireWriter.SizeOf(entry.Value) + 16;
            var w = new WireWriter(writer.GetSpan(size));
            w.WriteBytes(key);
            w.WriteBytes(entry.Value);
            w.WriteInt64(entry.Version);
            w.WriteInt64(entry.ExpiresAt);
            writer.Advance(size);
        }
    }

    /// <inheritdoc />
    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        var r = new WireReader(snapshot, "key-value snapshot");
        var logTimeMs = r.ReadInt64("logTimeMs");
        var count = r.ReadCount("keys", 4 + 4 + 16);
        var entries = NewEntries(count);
        byte[]? previous = null;
        for (var i = 0; i < count; i++)
        {
            var key = r.ReadBytes("key");
            var value = r.ReadBytes("value");
            var version = r.ReadInt64("version");
            var expiresAt = r.ReadInt64("expiresAt");
            if (previous is not null && previous.AsSpan().SequenceCompareTo(key) >= 0)
            {
                throw new ProtocolException($"key-value snapshot: key {i} is not after the one before it (keys are written in byte order, once each)");
            }

            entries[key] = new Entry(value, version, expiresAt);
            previous = key;
        }

        r.End();
        // Swapped whole: a get on another thread sees the old state or the new one, never a half-filled dictionary.
        _entries = entries;
        Volatile.Write(ref _logTimeMs, logTimeMs);
        _expiries.Clear();
        foreach (var (key, entry) in entries)
        {
            if (entry.ExpiresAt != 0)
            {
                _expiries.Enqueue(key, entry.ExpiresAt);
            }
        }
    }

    private void Store(ReadOnlySpan<byte> key, byte[] value, long version, long expiresAt)
    {
        var lookup = _entries.GetAlternateLookup<ReadOnlySpan<byte>>();
        var stored = lookup.TryGetValue(key, out var existing, out _) ? existing : key.ToArray();
        _entries[stored] = new Entry(value, version, expiresAt);
        if (expiresAt != 0)
        {
            _expiries.Enqueue(stored, expiresAt);
        }
    }

    private bool TryGet(ReadOnlySpan<byte> key, [NotNullWhen(true)] out Entry? entry)
    {
        // Apply already removed every key expired by the last entry's time; the check keeps a get right even so.
        if (_entries.GetAlternateLookup<ReadOnlySpan<byte>>().TryGetValue(key, out entry) && !IsExpired(entry))
        {
            return true;
        }

        entry = null;
        return false;
    }

    private bool IsExpired(Entry entry) => entry.ExpiresAt != 0 && entry.ExpiresAt <= Volatile.Read(ref _logTimeMs);

    private void RemoveExpired()
    {
        while (_expiries.TryPeek(out var key, out var at) && at <= _logTimeMs)
        {
            _expiries.Dequeue();
            if (_entries.TryGetValue(key, out var entry) && entry.ExpiresAt == at)
            {
                _entries.TryRemove(key, out _);
            }
        }
    }

    private static bool TryParseInteger(byte[] value, out long number) =>
        Utf8Parser.TryParse(value, out number, out var consumed) && consumed == value.Length && value.Length > 0;

    private static byte[] FormatInteger(long value)
    {
        Span<byte> buffer = stackalloc byte[24];
        Utf8Formatter.TryFormat(value, buffer, out var written);
        return buffer[..written].ToArray();
    }

    private static ConcurrentDictionary<byte[], Entry> NewEntries(int capacity) => new(concurrencyLevel: 1, Math.Max(capacity, 31), KeyComparer.Instance);

    private sealed record Entry(byte[] Value, long Version, long ExpiresAt);

    /// <summary>Compares keys by their bytes, and lets a lookup by span find them without copying the key.</summary>
    private sealed class KeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly KeyComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => GetHashCode(obj.AsSpan());

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hash = default(HashCode);
            hash.AddBytes(alternate);
            return hash.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}

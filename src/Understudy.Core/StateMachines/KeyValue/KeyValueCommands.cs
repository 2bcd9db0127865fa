using System.Globalization;
using System.Text;
using Understudy.Protocol;

namespace Understudy.Core.StateMachines.KeyValue;

/// <summary>What one key-value command, query or result is. The byte values are on the wire and in logs: never renumber.</summary>
public enum KeyValueOperation : byte
{
    Put = 1,
    Delete = 2,
    CompareAndSet = 3,
    Increment = 4,

    /// <summary>The only query: it reads one key and changes nothing.</summary>
    Get = 5,
}

/// <summary>How a key-value command or query ended. Carried in results: never renumber.</summary>
public enum KeyValueStatus : byte
{
    /// <summary>Done: a get found the key, a put/delete/increment took effect, a compare-and-set swapped.</summary>
    Ok = 1,

    /// <summary>A get or delete found no such key (missing or expired); a delete of a missing key changes nothing.</summary>
    NotFound = 2,

    /// <summary>A compare-and-set whose expected value did not match: nothing changed.</summary>
    Mismatch = 3,

    /// <summary>An increment over a value that is not a decimal 64-bit integer: nothing changed.</summary>
    NotAnInteger = 4,

    /// <summary>An increment whose sum does not fit in 64 bits: nothing changed.</summary>
    Overflow = 5,

    /// <summary>
    /// A command or query the store cannot read. <see cref="IStateMachine.Validate"/> keeps such commands out of
    /// the log, so a command only ends so if a newer version logged it; a malformed query ends so directly.
    /// </summary>
    Malformed = 6,
}

/// <summary>
/// The answer to one key-value command or query, decoded by <see cref="KeyValueCommands.DecodeResult"/>.
/// </summary>
/// <param name="Status">How it ended.</param>
/// <param name="Value">
/// What a get read, the new decimal text of an increment, or, for a compare-and-set that did not match, the value
/// it found. Empty otherwise: a put or a successful compare-and-set does not echo what the caller wrote.
/// </param>
/// <param name="Version">
/// The log index of the entry that last wrote the key (as etcd's <c>mod_revision</c>): it grows with every write
/// to the key, and is the same on every replica. Zero when the key is missing.
/// </param>
/// <param name="Number">For an increment that succeeded, the new value; otherwise zero.</param>
public readonly record struct KeyValueResult(KeyValueStatus Status, ReadOnlyMemory<byte> Value, long Version, long Number)
{
    /// <summary>True when the call did what it asked (see <see cref="KeyValueStatus.Ok"/>).</summary>
    public bool IsOk => Status == KeyValueStatus.Ok;

    /// <summary>True when the key exists after the call (its <see cref="Version"/> is not zero).</summary>
    public bool Exists => Version != 0;

    /// <summary><see cref="Value"/> as UTF-8 text; null when the key does not exist.</summary>
    public string? ValueText => Exists ? Encoding.UTF8.GetString(Value.Span) : null;
}

/// <summary>
/// The byte layout of key-value commands, queries and results, shared by the store, the client, the simulator
/// and the CLI. Keys and values are byte strings; the <c>string</c> overloads encode them as UTF-8.
/// </summary>
/// <remarks>
/// Layout (little-endian; a byte string is a 4-byte length then the bytes): the first byte is the
/// <see cref="KeyValueOperation"/>, then
/// <list type="bullet">
/// <item>put: key, value, has-expiry flag, expire-after (ms, only with the flag);</item>
/// <item>delete / get: key;</item>
/// <item>compare-and-set: key, has-expected flag, expected (only with the flag), value;</item>
/// <item>increment: key, delta (8 bytes).</item>
/// </list>
/// A result is: status byte, version (8), number (8), value.
/// </remarks>
public static class KeyValueCommands
{
    /// <summary>Longest key, in bytes (etcd's limits are of the same order; a key is an index entry, not data).</summary>
    public const int MaxKeyBytes = 4 * 1024;

    /// <summary>Longest value, in bytes: one command is one log entry, and entries stay well below the frame limit.</summary>
    public const int MaxValueBytes = 1024 * 1024;

    /// <summary>Longest expiry accepted (about 100 years): keeps the expiry time far from overflowing 64 bits.</summary>
    public const long MaxExpireAfterMs = 100L * 366 * 24 * 60 * 60 * 1000;

    public static byte[] Get(ReadOnlySpan<byte> key) => KeyOnly(KeyValueOperation.Get, key);

    public static byte[] Get(string key) => Get(Utf8(key));

    public static byte[] Delete(ReadOnlySpan<byte> key) => KeyOnly(KeyValueOperation.Delete, key);

    public static byte[] Delete(string key) => Delete(Utf8(key));

    /// <summary>Sets <paramref name="key"/>; with <paramref name="expireAfterMs"/>, the key is gone once the log's time reaches the put's log time plus that.</summary>
    public static byte[] Put(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long? expireAfterMs = null)
    {
        var bytes = new byte[1 + WireWriter.SizeOf(key) + WireWriter.SizeOf(value) + 1 + (expireAfterMs is null ? 0 : 8)];
        var w = new WireWriter(bytes);
        w.WriteByte((byte)KeyValueOperation.Put);
        w.WriteBytes(key);
        w.WriteBytes(value);
        w.WriteBool(expireAfterMs is not null);
        if (expireAfterMs is { } ms)
        {
            w.WriteInt64(ms);
        }

        return bytes;
    }

    public static byte[] Put(string key, string value, long? expireAfterMs = null) => Put(Utf8(key), Utf8(value), expireAfterMs);

    /// <summary>Stores <paramref name="value"/> only when the key holds <paramref name="expected"/>; a null expected means "only when the key is missing".</summary>
    /// <remarks>Takes the expected value as an array, not a span or memory, so that null (absent) cannot be confused with empty.</remarks>
    public static byte[] CompareAndSet(ReadOnlySpan<byte> key, byte[]? expected, ReadOnlySpan<byte> value)
    {
        var bytes = new byte[1 + WireWriter.SizeOf(key) + 1 + (expected is null ? 0 : WireWriter.SizeOf(expected)) + WireWriter.SizeOf(value)];
        var w = new WireWriter(bytes);
        w.WriteByte((byte)KeyValueOperation.CompareAndSet);
        w.WriteBytes(key);
        w.WriteBool(expected is not null);
        if (expected is not null)
        {
            w.WriteBytes(expected);
        }

        w.WriteBytes(value);
        return bytes;
    }

    public static byte[] CompareAndSet(string key, string? expected, string value) =>
        CompareAndSet(Utf8(key), expected is null ? null : Encoding.UTF8.GetBytes(expected), Utf8(value));

    /// <summary>Adds <paramref name="delta"/> to the key read as a decimal integer (missing counts as 0).</summary>
    public static byte[] Increment(ReadOnlySpan<byte> key, long delta)
    {
        var bytes = new byte[1 + WireWriter.SizeOf(key) + 8];
        var w = new WireWriter(bytes);
        w.WriteByte((byte)KeyValueOperation.Increment);
        w.WriteBytes(key);
        w.WriteInt64(delta);
        return bytes;
    }

    public static byte[] Increment(string key, long delta) => Increment(Utf8(key), delta);

    /// <summary>Reads a result written by the store.</summary>
    /// <exception cref="ProtocolException">The bytes are not a key-value result.</exception>
    public static KeyValueResult DecodeResult(ReadOnlySpan<byte> result)
    {
        var r = new WireReader(result, "key-value result");
        var status = r.ReadEnum("status", KeyValueStatus.Malformed);
        var version = r.ReadInt64("version");
        var number = r.ReadInt64("number");
        var value = r.ReadBytes("value");
        r.End();
        return new KeyValueResult(status, value, version, number);
    }

    /// <summary>The operation a command or query names, or null when it names none.</summary>
    public static KeyValueOperation? OperationOf(ReadOnlySpan<byte> commandOrQuery) =>
        commandOrQuery.Length > 0 && Enum.IsDefined((KeyValueOperation)commandOrQuery[0]) ? (KeyValueOperation)commandOrQuery[0] : null;

    /// <summary>A short readable form for logs and reports, e.g. <c>put(k1, 3 bytes, ttl 1000 ms)</c>.</summary>
    public static string Describe(ReadOnlySpan<byte> commandOrQuery)
    {
        if (!TryDecode(commandOrQuery, out var c, out var error))
        {
            return "malformed: " + error;
        }

        var key = Printable(c.Key);
        return c.Operation switch
        {
            KeyValueOperation.Get => $"get({key})",
            KeyValueOperation.Delete => $"del({key})",
            KeyValueOperation.Put => $"put({key}, {c.Value.Length.ToString(CultureInfo.InvariantCulture)} bytes"
                + (c.HasExpiry ? $", ttl {c.ExpireAfterMs.ToString(CultureInfo.InvariantCulture)} ms)" : ")"),
            KeyValueOperation.CompareAndSet => $"cas({key}, " + (c.HasExpected ? $"{c.Expected.Length.ToString(CultureInfo.InvariantCulture)} bytes" : "absent")
                + $", {c.Value.Length.ToString(CultureInfo.InvariantCulture)} bytes)",
            KeyValueOperation.Increment => $"incr({key}, {c.Delta.ToString(CultureInfo.InvariantCulture)})",
            _ => c.Operation.ToString(),
        };
    }

    internal static byte[] EncodeResult(KeyValueStatus status, long version, long number, ReadOnlySpan<byte> value)
    {
        var bytes = new byte[1 + 8 + 8 + WireWriter.SizeOf(value)];
        var w = new WireWriter(bytes);
        w.WriteByte((byte)status);
        w.WriteInt64(version);
        w.WriteInt64(number);
        w.WriteBytes(value);
        return bytes;
    }

    /// <summary>Decodes and checks a command or query; false with a readable <paramref name="error"/> when it is not one.</summary>
    internal static bool TryDecode(ReadOnlySpan<byte> bytes, out DecodedCommand command, out string? error)
    {
        command = default;
        if (bytes.Length == 0)
        {
            error = "empty key-value command";
            return false;
        }

        try
        {
            var r = new WireReader(bytes, "key-value command");
            var op = (KeyValueOperation)r.ReadByte("operation");
            var key = r.ReadBytesSpan("key");
            ReadOnlySpan<byte> value = default;
            ReadOnlySpan<byte> expected = default;
            bool hasExpected = false, hasExpiry = false;
            long expireAfterMs = 0, delta = 0;
            switch (op)
            {
                case KeyValueOperation.Get:
                case KeyValueOperation.Delete:
                    break;
                case KeyValueOperation.Put:
                    value = r.ReadBytesSpan("value");
                    hasExpiry = r.ReadBool("hasExpiry");
                    if (hasExpiry)
                    {
                        expireAfterMs = r.ReadInt64("expireAfterMs");
                    }

                    break;
                case KeyValueOperation.CompareAndSet:
                    hasExpected = r.ReadBool("hasExpected");
                    if (hasExpected)
                    {
                        expected = r.ReadBytesSpan("expected");
                    }

                    value = r.ReadBytesSpan("value");
                    break;
                case KeyValueOperation.Increment:
                    delta = r.ReadInt64("delta");
                    break;
                default:
                    error = $"unknown key-value operation {bytes[0].ToString(CultureInfo.InvariantCulture)}";
                    return false;
            }

            r.End();
            error = Check(key, value, expected, hasExpiry, expireAfterMs);
            if (error is not null)
            {
                return false;
            }

            command = new DecodedCommand(op, key, value, hasExpected, expected, hasExpiry, expireAfterMs, delta);
            return true;
        }
        catch (ProtocolException e)
        {
            error = e.Message;
            return false;
        }
    }

    private static string? Check(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ReadOnlySpan<byte> expected, bool hasExpiry, long expireAfterMs)
    {
        if (key.Length == 0)
        {
            return "a key must not be empty";
        }

        if (key.Length > MaxKeyBytes)
        {
            return $"key of {key.Length} bytes is over the limit of {MaxKeyBytes}";
        }

        if (value.Length > MaxValueBytes || expected.Length > MaxValueBytes)
        {
            return $"value of {Math.Max(value.Length, expected.Length)} bytes is over the limit of {MaxValueBytes}";
        }

        if (hasExpiry && expireAfterMs is < 1 or > MaxExpireAfterMs)
        {
            return $"expiry of {expireAfterMs} ms is outside 1..{MaxExpireAfterMs}";
        }

        return null;
    }

    private static byte[] KeyOnly(KeyValueOperation op, ReadOnlySpan<byte> key)
    {
        var bytes = new byte[1 + WireWriter.SizeOf(key)];
        var w = new WireWriter(bytes);
        w.WriteByte((byte)op);
        w.WriteBytes(key);
        return bytes;
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static string Printable(ReadOnlySpan<byte> key)
    {
        var text = Encoding.UTF8.GetString(key);
        return text.Length > 64 ? string.Concat(text.AsSpan(0, 64), "…") : text;
    }

    /// <summary>A command or query read in place (the spans point into the command's bytes).</summary>
    internal readonly ref struct DecodedCommand(
        KeyValueOperation operation,
        ReadOnlySpan<byte> key,
        ReadOnlySpan<byte> value,
        bool hasExpected,
        ReadOnlySpan<byte> expected,
        bool hasExpiry,
        long expireAfterMs,
        long delta)
    {
        public KeyValueOperation Operation { get; } = operation;

        public ReadOnlySpan<byte> Key { get; } = key;

        public ReadOnlySpan<byte> Value { get; } = value;

        public bool HasExpected { get; } = hasExpected;

        public ReadOnlySpan<byte> Expected { get; } = expected;

        public bool HasExpiry { get; } = hasExpiry;

        public long ExpireAfterMs { get; } = expireAfterMs;

        public long Delta { get; } = delta;
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text;
using Understudy.Client;
using Understudy.Core.StateMachines.KeyValue;

namespace Understudy.Orchestration.Bench;

/// <summary>
/// The key-value bench's judgement: after the run every key is read back (linearizably) and its value compared
/// with the puts the clients made. A value whose put was acknowledged before another acknowledged put to the same
/// key was sent is lost (that later put is missing); a value no client ever sent is corrupt. Puts whose outcome is
/// unknown (an error or a timeout) may or may not have been applied, so their values are accepted.
/// </summary>
public sealed record KeyValueVerdict(int KeysChecked, int Lost, int Unknown, IReadOnlyList<string> Examples)
{
    public bool Valid => Lost == 0 && Unknown == 0;
}

/// <summary>Every put the bench's clients made, per key, with when it was sent and acknowledged (one monotonic clock).</summary>
internal sealed class KeyValueLedger
{
    private readonly KeyRecord[] _keys;

    public KeyValueLedger(int keySpace)
    {
        _keys = new KeyRecord[keySpace];
        for (var i = 0; i < keySpace; i++)
        {
            _keys[i] = new KeyRecord(Encoding.UTF8.GetBytes("k" + i.ToString(CultureInfo.InvariantCulture)));
        }
    }

    public int Count => _keys.Length;

    public byte[] Key(int index) => _keys[index].Key;

    /// <summary>Writes every key once, a few at a time, before the measured run.</summary>
    public async Task FillAsync(UnderstudyClient client, int payload, CancellationToken cancellationToken)
    {
        var next = -1;
        var fillers = Enumerable.Range(0, 16).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < _keys.Length)
            {
                var value = KeyValueMix.Value($"init-{i.ToString(CultureInfo.InvariantCulture)}", payload);
                await PutAsync(client, i, value, cancellationToken).ConfigureAwait(false);
            }
        });
        await Task.WhenAll(fillers).ConfigureAwait(false);
    }

    /// <summary>Puts <paramref name="value"/> and records it: acknowledged with its times, or of unknown outcome.</summary>
    public async Task PutAsync(UnderstudyClient client, int key, string value, CancellationToken cancellationToken)
    {
        var record = _keys[key];
        var invoked = Stopwatch.GetTimestamp();
        try
        {
            await PutUnrecordedAsync(client, key, value, cancellationToken).ConfigureAwait(false);
        }
        catch (UnderstudyException)
        {
            lock (record)
            {
                record.Maybe.Add(value);
            }

            throw;
        }

        var completed = Stopwatch.GetTimestamp();
        lock (record)
        {
            record.Acknowledged[value] = completed;
            record.LastAcknowledgedInvoke = Math.Max(record.LastAcknowledgedInvoke, invoked);
        }
    }

    /// <summary>Puts <paramref name="value"/> and records nothing (for a run that is not judged); throws unless the store answered Ok.</summary>
    public async Task PutUnrecordedAsync(UnderstudyClient client, int key, string value, CancellationToken cancellationToken)
    {
        var name = _keys[key].Key;
        var reply = await client.ExecuteAsync(KeyValueCommands.Put(name, Encoding.UTF8.GetBytes(value)), cancellationToken).ConfigureAwait(false);
        if (KeyValueCommands.DecodeResult(reply.Payload.Span).Status is var status and not KeyValueStatus.Ok)
        {
            throw new UnderstudyException($"put of {Encoding.UTF8.GetString(name)} answered {status}", Core.Client.OutcomeKind.Failed);
        }
    }

    /// <summary>Reads every key back and judges it (see <see cref="KeyValueVerdict"/>).</summary>
    public async Task<KeyValueVerdict> JudgeAsync(UnderstudyClient client, CancellationToken cancellationToken)
    {
        var lost = 0;
        var unknown = 0;
        var examples = new List<string>();
        var next = -1;
        var readers = Enumerable.Range(0, 16).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < _keys.Length)
            {
                var record = _keys[i];
                var reply = await client.QueryAsync(KeyValueCommands.Get(record.Key), cancellationToken).ConfigureAwait(false);
                var read = KeyValueCommands.DecodeResult(reply.Payload.Span).ValueText;
                string? problem;
                lock (record)
                {
                    problem = record.Judge(read);
                }

                if (problem is null)
                {
                    continue;
                }

                lock (examples)
                {
                    if (problem.StartsWith("lost", StringComparison.Ordinal))
                    {
                        lost++;
                    }
                    else
                    {
                        unknown++;
                    }

                    if (examples.Count < 5)
                    {
                        examples.Add(problem);
                    }
                }
            }
        });
        await Task.WhenAll(readers).ConfigureAwait(false);
        return new KeyValueVerdict(_keys.Length, lost, unknown, examples);
    }

    private sealed class KeyRecord(byte[] key)
    {
        public byte[] Key { get; } = key;

        /// <summary>Acknowledged values, with when their acknowledgement came.</summary>
        public Dictionary<string, long> Acknowledged { get; } = new(StringComparer.Ordinal);

        /// <summary>Values whose put ended in an error or a timeout: maybe applied.</summary>
        public HashSet<string> Maybe { get; } = new(StringComparer.Ordinal);

        /// <summary>When the latest-sent acknowledged put was sent.</summary>
        public long LastAcknowledgedInvoke { get; set; } = long.MinValue;

        /// <summary>Null when <paramref name="read"/> can be the key's last value; otherwise why not.</summary>
        public string? Judge(string? read)
        {
            var name = Encoding.UTF8.GetString(Key);
            if (read is null)
            {
                return Acknowledged.Count > 0 ? $"lost: {name} is missing after {Acknowledged.Count} acknowledged puts" : null;
            }

            if (Acknowledged.TryGetValue(read, out var completed))
            {
                return completed < LastAcknowledgedInvoke
                    ? $"lost: {name} holds \"{Short(read)}\", whose put was acknowledged before a later acknowledged put was sent"
                    : null;
            }

            return Maybe.Contains(read) ? null : $"unknown: {name} holds \"{Short(read)}\", a value no acknowledged or pending put sent";
        }

        private static string Short(string value) => value.Length > 24 ? value[..24] + "…" : value;
    }
}

/// <summary>One bench client's operations on the key-value store: gets and puts over the key space, in the given mix.</summary>
internal sealed class KeyValueMix(int worker, KeyValueLedger keys, double getRatio, int payload)
{
    private readonly Random _random = new(worker + 1);
    private long _puts;

    /// <summary>Record each put in the ledger for the judgement after the run (false: only put it).</summary>
    public bool Record { get; init; } = true;

    /// <summary>A value of <paramref name="payload"/> bytes that starts with <paramref name="id"/>, so each put's value is its own.</summary>
    public static string Value(string id, int payload) => id.Length >= payload ? id : id + "-" + new string('x', Math.Max(0, payload - id.Length - 1));

    /// <summary>One operation; true when it was a get.</summary>
    public async Task<bool> NextAsync(UnderstudyClient client)
    {
        var key = _random.Next(keys.Count);
        if (_random.NextDouble() < getRatio)
        {
            await client.QueryAsync(KeyValueCommands.Get(keys.Key(key)), CancellationToken.None).ConfigureAwait(false);
            return true;
        }

        var id = $"w{worker.ToString(CultureInfo.InvariantCulture)}-{(++_puts).ToString(CultureInfo.InvariantCulture)}";
        await (Record
            ? keys.PutAsync(client, key, Value(id, payload), CancellationToken.None)
            : keys.PutUnrecordedAsync(client, key, Value(id, payload), CancellationToken.None)).ConfigureAwait(false);
        return false;
    }
}

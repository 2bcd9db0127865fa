using System.CommandLine;
using System.Globalization;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Client;
using Understudy.Client.KeyValue;
using Understudy.Core.Client;
using Understudy.Core.StateMachines.KeyValue;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy kv get|put|del|cas|incr`: one call to a cluster running the key-value store
/// (`understudy up --state-machine kv`). Answers go to standard output; "no" answers (missing key, compare-and-set
/// that did not match, increment that could not apply) to standard error with exit code <see cref="ExitCodes.No"/>.
/// </summary>
internal static class KvVerb
{
    private const string KvExitCodes = "Exit codes: 0 done, 4 the answer is no (key not found, compare-and-set did not match, increment over a value that is not an integer or would overflow), 1 failed (no monitor answers, no answer in time, refused; for a write, an unknown outcome is said), 2 mistake in the command, 130 interrupted.";

    public static Command Create()
    {
        var command = new Command("kv", "Get, put, delete, compare-and-set and increment keys of a cluster running the key-value store (`understudy up --state-machine kv`). " + KvExitCodes);

        var getKey = KeyArgument();
        var stale = new Option<string?>("--stale") { Description = "Let a backup answer if it heard from its primary within this lag (e.g. 200ms, 2s): NOT linearizable, the value may miss recent writes. Default: the primary answers (linearizable)." };
        var get = new Command("get", "Print the key's value (linearizable: the primary answers under its lease). " + KvExitCodes) { getKey, stale };
        Configure(get, async (client, parse, ct) =>
        {
            var consistency = parse.GetValue(stale) is { } lag ? ReadConsistency.BoundedStaleness(ParseDuration(lag, "--stale")) : ReadConsistency.Linearizable;
            var key = parse.GetValue(getKey)!;
            var result = await client.GetAsync(key, consistency, ct);
            if (result.Status != KeyValueStatus.Ok)
            {
                Console.Error.WriteLine($"not found: {key}");
                return ExitCodes.No;
            }

            Console.WriteLine(result.ValueText);
            return ExitCodes.Ok;
        }, validate: parse =>
        {
            if (parse.GetValue(stale) is { } lag)
            {
                ParseDuration(lag, "--stale");
            }
        });

        var putKey = KeyArgument();
        var putValue = new Argument<string>("value") { Description = "The value (UTF-8 text)." };
        var ttl = new Option<string?>("--ttl") { Description = "Expire the key after this long (e.g. 30s, 500ms, 5m, 1h), by the log's time: it is gone for every replica at once." };
        var put = new Command("put", "Set the key; prints its new version (the log index of the write). " + KvExitCodes) { putKey, putValue, ttl };
        Configure(put, async (client, parse, ct) =>
        {
            TimeSpan? expireAfter = parse.GetValue(ttl) is { } t ? ParseDuration(t, "--ttl") : null;
            var result = await client.PutAsync(parse.GetValue(putKey)!, parse.GetValue(putValue)!, expireAfter, ct);
            Console.WriteLine($"ok (version {result.Version.ToString(CultureInfo.InvariantCulture)})");
            return ExitCodes.Ok;
        }, validate: parse =>
        {
            if (parse.GetValue(ttl) is { } t)
            {
                ParseDuration(t, "--ttl");
            }
        });

        var delKey = KeyArgument();
        var del = new Command("del", "Delete the key. " + KvExitCodes) { delKey };
        Configure(del, async (client, parse, ct) =>
        {
            var key = parse.GetValue(delKey)!;
            var result = await client.DeleteAsync(key, ct);
            if (result.Status != KeyValueStatus.Ok)
            {
                Console.Error.WriteLine($"not found: {key}");
                return ExitCodes.No;
            }

            Console.WriteLine("deleted");
            return ExitCodes.Ok;
        });

        var casKey = KeyArgument();
        var casValue = new Argument<string>("value") { Description = "The new value, stored only if the key holds the expected one." };
        var expect = new Option<string?>("--expect") { Description = "The value the key must hold." };
        var expectAbsent = new Option<bool>("--expect-absent") { Description = "The key must not exist (instead of --expect)." };
        var cas = new Command("cas", "Compare-and-set: store the value only if the key holds --expect (or does not exist, with --expect-absent); applied once even across a failover. " + KvExitCodes) { casKey, casValue, expect, expectAbsent };
        Configure(cas, async (client, parse, ct) =>
        {
            var result = await client.CompareAndSetAsync(parse.GetValue(casKey)!, parse.GetValue(expectAbsent) ? null : parse.GetValue(expect), parse.GetValue(casValue)!, ct);
            if (result.Status != KeyValueStatus.Ok)
            {
                Console.Error.WriteLine(result.Exists ? $"no match: the key holds \"{result.ValueText}\" (version {result.Version.ToString(CultureInfo.InvariantCulture)})" : "no match: the key does not exist");
                return ExitCodes.No;
            }

            Console.WriteLine($"swapped (version {result.Version.ToString(CultureInfo.InvariantCulture)})");
            return ExitCodes.Ok;
        }, validate: parse =>
        {
            if (parse.GetValue(expectAbsent) == (parse.GetResult(expect) is not null))
            {
                throw new UsageException("cas needs exactly one of --expect VALUE and --expect-absent");
            }
        });

        var incrKey = KeyArgument();
        var by = new Option<long>("--by") { Description = "What to add (may be negative).", DefaultValueFactory = _ => 1 };
        var incr = new Command("incr", "Add to the key read as a decimal integer (a missing key counts as 0) and print the new value. " + KvExitCodes) { incrKey, by };
        Configure(incr, async (client, parse, ct) =>
        {
            var result = await client.IncrementAsync(parse.GetValue(incrKey)!, parse.GetValue(by), ct);
            switch (result.Status)
            {
                case KeyValueStatus.Ok:
                    Console.WriteLine(result.Number.ToString(CultureInfo.InvariantCulture));
                    return ExitCodes.Ok;
                case KeyValueStatus.Overflow:
                    Console.Error.WriteLine("no: the sum does not fit in a 64-bit integer; nothing changed");
                    return ExitCodes.No;
                default:
                    Console.Error.WriteLine($"no: the key holds \"{result.ValueText}\", not an integer; nothing changed");
                    return ExitCodes.No;
            }
        });

        command.Subcommands.Add(get);
        command.Subcommands.Add(put);
        command.Subcommands.Add(del);
        command.Subcommands.Add(cas);
        command.Subcommands.Add(incr);
        return command;
    }

    /// <summary>
    /// A duration with its unit: ms, s, m or h (e.g. 200ms, 30s, 1.5m); a usage error otherwise, and for anything
    /// under 1 ms or over the store's longest expiry.
    /// </summary>
    public static TimeSpan ParseDuration(string raw, string flag)
    {
        var text = raw.Trim().ToLowerInvariant();
        (string Suffix, double Ms)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)];
        foreach (var (suffix, ms) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(text[..^suffix.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount)
                && amount * ms >= 1 && amount * ms <= KeyValueCommands.MaxExpireAfterMs)
            {
                return TimeSpan.FromMilliseconds(amount * ms);
            }
        }

        throw new UsageException($"{flag} is '{raw}': expected a duration of at least 1 ms with its unit, e.g. 200ms, 30s, 5m or 1h");
    }

    private static Argument<string> KeyArgument() => new("key") { Description = "The key (UTF-8 text, not empty)." };

    /// <summary>
    /// Adds --monitor and --timeout, checks the command line before connecting (usage errors start nothing), then runs
    /// <paramref name="call"/> with a client whose monitor has answered; a failed call becomes one `error:` line.
    /// </summary>
    private static void Configure(Command command, Func<KeyValueClient, ParseResult, CancellationToken, Task<int>> call, Action<ParseResult>? validate = null)
    {
        var monitor = ClientVerb.MonitorOption();
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait for the answer, retries and failovers included, before giving up.", DefaultValueFactory = _ => 10 };
        command.Options.Add(monitor);
        command.Options.Add(timeout);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var seconds = parse.GetValue(timeout);
            if (seconds <= 0 || double.IsNaN(seconds) || seconds > 86_400)
            {
                throw new UsageException($"--timeout is '{seconds}': expected a number of seconds above 0 and at most 86400");
            }

            foreach (var argument in command.Arguments)
            {
                if (argument.Name == "key" && parse.GetValue((Argument<string>)argument) is { Length: 0 })
                {
                    throw new UsageException("the key must not be empty");
                }
            }

            validate?.Invoke(parse);
            var monitors = ClientVerb.ParseMonitor(parse, monitor);
            await using var client = new UnderstudyClient(new UnderstudyClientOptions
            {
                Monitors = monitors,
                Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(seconds) },
            });
            try
            {
                await ClientVerb.AskStatusAsync(client, cancellationToken);
            }
            catch (UnderstudyException)
            {
                throw new CliFailure(ClientVerb.MonitorUnreachable(monitors));
            }

            try
            {
                return await call(new KeyValueClient(client), parse, cancellationToken);
            }
            catch (UnderstudyException e)
            {
                var outcome = e.Outcome == OutcomeKind.Unknown && command.Name != "get" ? " (the write may or may not have been applied)" : string.Empty;
                throw new CliFailure($"no answer from the cluster of the monitor at {MonitorAddresses.Format(monitors)} within {seconds:0.#} s{outcome}: {e.Message}. Is a primary serving, and does the cluster run --state-machine kv? Check with `./understudy status`.");
            }
        });
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy client`: the original's client. Interactive: each line typed is sent as a message and its
/// acknowledgement printed. Scripted (--json): one JSON line per input line. Plus `read` and `count`.
/// </summary>
internal static class ClientVerb
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static Command Create()
    {
        var monitor = MonitorOption();
        var json = new Option<bool>("--json") { Description = "One JSON line per input line: {\"seq\":N,\"text\":...} once acknowledged, or {\"error\":...,\"text\":...}." };
        var timeout = new Option<double>("--timeout") { Description = "Seconds each message may take, retries and failovers included, before it is reported as an error.", DefaultValueFactory = _ => 10 };
        var answerTimeout = new Option<double>("--timeout") { Description = "Seconds to wait for the answer, retries and failovers included, before giving up.", DefaultValueFactory = _ => 10 };
        var quiet = new Option<bool>("--quiet") { Description = "Do not print primary changes." };
        var command = new Command("client", "Send messages: type a line and it is appended to the message store; its sequence number is printed once every in-sync server has it. Reads lines from standard input (a pipe works too).")
        {
            monitor, json, timeout, quiet,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var client = await ConnectAsync(parse, monitor, timeout, cancellationToken);
            return await SendLinesAsync(client, parse.GetValue(json), parse.GetValue(quiet), cancellationToken);
        });

        var from = new Option<long>("--from") { Description = "First sequence number to read (from 1).", DefaultValueFactory = _ => 1 };
        var limit = new Option<long?>("--limit", "--count") { Description = "Most messages to print (default: all; with --follow, stop after this many). --count is the same." };
        var follow = new Option<bool>("--follow", "-f") { Description = "Like `tail -f`: print what is there, then keep printing messages as they commit, until Ctrl+C." };
        var readJson = new Option<bool>("--json") { Description = "One {\"seq\":N,\"text\":...} line per message." };
        var read = new Command("read", "Print messages from the message store, in order, as `seq<TAB>text` lines, fetched page by page (no reply holds the whole log). With --follow, keep printing new messages as they commit.") { from, limit, follow, readJson };
        read.Options.Add(monitor);
        read.Options.Add(answerTimeout);
        read.SetAction(async (parse, cancellationToken) =>
        {
            var start = parse.GetValue(from);
            if (start < 1)
            {
                throw new UsageException("--from must be at least 1 (sequence numbers start at 1)");
            }

            var most = parse.GetValue(limit) ?? long.MaxValue;
            if (most < 0)
            {
                throw new UsageException($"--limit is '{most}': expected 0 or more messages");
            }

            await using var client = await ConnectAsync(parse, monitor, answerTimeout, cancellationToken);
            var asJson = parse.GetValue(readJson);
            void Print(SequencedMessage m) =>
                Console.WriteLine(asJson ? JsonSerializer.Serialize(new { seq = m.Seq, text = m.Text }, Json) : $"{m.Seq}\t{m.Text}");

            var printed = 0L;
            if (parse.GetValue(follow))
            {
                if (most == 0)
                {
                    return ExitCodes.Ok;
                }

                await AnswerAsync(parse, monitor, answerTimeout, async () =>
                {
                    await foreach (var m in client.FollowAsync(start, cancellationToken))
                    {
                        Print(m);
                        if (++printed >= most)
                        {
                            break;
                        }
                    }

                    return printed;
                });

                // A cancelled follow ends its enumeration quietly; Ctrl+C is still an interrupt, as for every verb.
                return cancellationToken.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.Ok;
            }

            var next = start;
            while (printed < most)
            {
                var want = (int)Math.Min(most - printed, MessageStoreCommands.MaxReadCount);
                var page = await AnswerAsync(parse, monitor, answerTimeout, () => client.ReadAsync(next, want, cancellationToken));
                if (page.Count == 0)
                {
                    break; // a page may be short of `want` when the reply's byte cap cuts it: only an empty one is the end
                }

                foreach (var m in page)
                {
                    Print(m);
                }

                printed += page.Count;
                next = page[^1].Seq + 1;
            }

            return ExitCodes.Ok;
        });

        var countCommand = new Command("count", "Print how many messages the log holds (the original's messageCount).");
        countCommand.Options.Add(monitor);
        countCommand.Options.Add(answerTimeout);
        countCommand.SetAction(async (parse, cancellationToken) =>
        {
            await using var client = await ConnectAsync(parse, monitor, answerTimeout, cancellationToken);
            Console.WriteLine(await AnswerAsync(parse, monitor, answerTimeout, () => client.CountAsync(cancellationToken)));
            return 0;
        });

        command.Subcommands.Add(read);
        command.Subcommands.Add(countCommand);
        return command;
    }

    public static Option<string> MonitorOption() => new("--monitor")
    {
        Description = "Every monitor's client API address, comma-separated (host:port[,host:port...]; a group's monitors under `up` take 9001, 9011, 9021...). Default: the monitors of an `up` running here with its default data folder, else 127.0.0.1:9001. Env: UNDERSTUDY_CLIENT__MONITOR.",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("UNDERSTUDY_CLIENT__MONITOR") ?? "127.0.0.1:9001",
    };

    /// <summary>
    /// The monitors given; when none are (no flag, no variable) and an `up` runs with the default data folder here,
    /// every monitor of that `up`, so `status` and `client` keep working when its monitor 1 is down.
    /// </summary>
    public static IReadOnlyList<NodeAddress> ParseMonitor(ParseResult parse, Option<string> monitor)
    {
        var given = parse.GetResult(monitor) is { Implicit: false } || Environment.GetEnvironmentVariable("UNDERSTUDY_CLIENT__MONITOR") is { Length: > 0 };
        if (!given && UpInfo.LoadIfRunning(UpVerb.DefaultData) is { } up)
        {
            return up.MonitorsOrFirst;
        }

        return MonitorAddresses.Parse(parse.GetValue(monitor)!, "--monitor (or UNDERSTUDY_CLIENT__MONITOR)");
    }

    /// <summary>How long a verb waits for the monitor before saying it is not there.</summary>
    public static readonly TimeSpan MonitorDeadline = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Asks the monitors for their status within <see cref="MonitorDeadline"/>, asking once more after a second. A status read
    /// changes nothing, so asking twice is harmless, and it has to be asked again when the client moves: a request sent
    /// to a follower whose hint then moves the client to the active monitor loses its answer with the connection it
    /// went out on (seen right after the active monitor of a group was killed). Throws <see cref="UnderstudyException"/>
    /// if no answer came by the deadline.
    /// </summary>
    public static async Task<AdminResponse> AskStatusAsync(UnderstudyClient client, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            // The first ask gets a second; the last the rest of the deadline, so a slow but reachable monitor still answers.
            var left = MonitorDeadline - Stopwatch.GetElapsedTime(started);
            try
            {
                return await client.AdminAsync(AdminCommand.Status, NodeAddress.None, attempt == 1 && left > TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : left, cancellationToken);
            }
            catch (UnderstudyException) when (MonitorDeadline - Stopwatch.GetElapsedTime(started) > TimeSpan.FromMilliseconds(50))
            {
            }
        }
    }

    /// <summary>The one line for a monitor that does not answer: the address tried and what to start or pass.</summary>
    public static string MonitorUnreachable(IReadOnlyList<NodeAddress> monitors) =>
        $"{(monitors.Count == 1 ? $"the monitor at {monitors[0]}" : $"no monitor of {MonitorAddresses.Format(monitors)}")} did not answer within {MonitorDeadline.TotalSeconds:0} s: is it running? Start a cluster with `./understudy up` (or a monitor with `./understudy monitor`), or pass --monitor host:port of the running one.";

    /// <summary>A client whose monitor has answered once; a <see cref="CliFailure"/> naming the address if it does not within a few seconds.</summary>
    private static async Task<UnderstudyClient> ConnectAsync(ParseResult parse, Option<string> monitor, Option<double> timeout, CancellationToken cancellationToken)
    {
        var seconds = parse.GetValue(timeout);
        if (seconds <= 0 || double.IsNaN(seconds) || seconds > 86_400)
        {
            throw new UsageException($"--timeout is '{seconds}': expected a number of seconds above 0 and at most 86400");
        }

        var address = ParseMonitor(parse, monitor);
        var client = new UnderstudyClient(new UnderstudyClientOptions
        {
            Monitors = address,
            Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(seconds) },
        });
        try
        {
            await AskStatusAsync(client, cancellationToken);
            return client;
        }
        catch (UnderstudyException)
        {
            await client.DisposeAsync();
            throw new CliFailure(MonitorUnreachable(address));
        }
    }

    /// <summary>Waits for one answer; a failure becomes one line naming the monitor and where to look next.</summary>
    private static async Task<T> AnswerAsync<T>(ParseResult parse, Option<string> monitor, Option<double> timeout, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (UnderstudyException e)
        {
            var address = ParseMonitor(parse, monitor);
            throw new CliFailure($"no answer from the cluster of the monitor at {MonitorAddresses.Format(address)} within {parse.GetValue(timeout):0.#} s ({e.Message}): is a primary serving? Check with `./understudy status --monitor {MonitorAddresses.Format(address)}`.");
        }
    }

    private static async Task<int> SendLinesAsync(UnderstudyClient client, bool json, bool quiet, CancellationToken cancellationToken)
    {
        var interactive = !Console.IsInputRedirected && !json;
        if (!quiet && !json)
        {
            client.PrimaryChanged += (_, e) => Console.Error.WriteLine($"[primary is now {e.Primary} (epoch {e.Epoch})]");
        }

        if (interactive)
        {
            Console.WriteLine("Type a message and press Enter to send it (Ctrl+D to quit).");
        }

        var failures = 0;
        while (await Console.In.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            try
            {
                var seq = await client.AppendAsync(line, cancellationToken);
                Console.WriteLine(json ? JsonSerializer.Serialize(new { seq, text = line }, Json) : $"ack #{seq}: {line}");
            }
            catch (UnderstudyException e)
            {
                failures++;
                var what = e.Outcome == OutcomeKind.Unknown ? $"no acknowledgement before the deadline (it may or may not be in the log): {e.Message}" : e.Message;
                if (json)
                {
                    Console.WriteLine(JsonSerializer.Serialize(new { error = what, text = line }, Json));
                }
                else
                {
                    Console.Error.WriteLine($"error: {what}");
                }
            }
        }

        return failures == 0 ? 0 : 1;
    }
}

using System.CommandLine;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Understudy.Cli.Cluster;
using Understudy.Cli.Infrastructure;
using Understudy.Core.StateMachines;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;

namespace Understudy.Cli.Verbs;

/// <summary>
/// `understudy up`: the original Main and run.sh in one. A group of monitors (three by default) and three servers as child processes,
/// a live line saying who is primary, and the original's commands typed at the prompt or sent from another
/// terminal (`understudy kill 1`, the scripts) through a control socket in the data folder.
/// </summary>
internal static class UpVerb
{
    public const string DefaultData = ".understudy/up";

    public static Command Create()
    {
        var servers = new Option<int>("--servers") { Description = "How many servers.", DefaultValueFactory = _ => 3 };
        var basePort = new Option<int>("--base-port") { Description = "Port of server 1; server N gets base-port - (N-1): 8090, 8089, 8088.", DefaultValueFactory = _ => 8090 };
        var monitors = new Option<int>("--monitors") { Description = "How many monitors: 1 (the configuration in a file), or 3 or 5 (a Raft group: any minority may fail). Monitor N takes --monitor-port + 10(N-1) for heartbeats, + 1 for clients, + 2 for Raft, and dashboard --http-port + N-1: 9000/9001/9002 and 9080 for monitor 1, 9010/9011/9012 and 9081 for monitor 2, 9020/9021/9022 and 9082 for monitor 3.", DefaultValueFactory = _ => 3 };
        var monitorPort = new Option<int>("--monitor-port") { Description = "Monitor 1's heartbeat port (monitor N: + 10(N-1)).", DefaultValueFactory = _ => 9000 };
        var clientPort = new Option<int>("--client-port") { Description = "Monitor 1's client API port (monitor N: + 10(N-1)).", DefaultValueFactory = _ => 9001 };
        var httpPort = new Option<int>("--http-port") { Description = "Monitor 1's dashboard port (monitor N: + N-1; servers use their port + 100).", DefaultValueFactory = _ => 9080 };
        var data = DataOption();
        var fsync = new Option<string>("--fsync") { Description = "always (fsync before every ack), batch (every 10 ms) or never.", DefaultValueFactory = _ => "always" };
        fsync.AcceptOnlyFromAmong(UpPreflight.FsyncValues);
        var fresh = new Option<bool>("--fresh") { Description = "Delete the data folder first (start from an empty log)." };
        var minInSync = new Option<int>("--min-in-sync") { Description = "Servers that must hold a write before it is acknowledged (1 to --servers).", DefaultValueFactory = _ => 1 };
        var stateMachine = new Option<string>("--state-machine") { Description = "The service every server runs: messages (the message store) or kv (the key-value store: `understudy kv ...`).", DefaultValueFactory = _ => "messages" };
        stateMachine.AcceptOnlyFromAmong("messages", "kv");
        var command = new Command("up", "Start a group of monitors (3 by default) and servers on this machine (the original's run.sh and Main), show who is primary, and take commands: stop primary, stop backup1, stop backup2, stop all, reboot, kill N, restart N, pause N, resume N, kill/restart/pause/resume monitor N, status, help, exit.")
        {
            servers, monitors, basePort, monitorPort, clientPort, httpPort, data, fsync, fresh, minInSync, stateMachine,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var folder = Path.GetFullPath(parse.GetValue(data)!);
            var count = parse.GetValue(servers);
            var monitorCount = parse.GetValue(monitors);

            // Everything the children will be given is checked before any of them starts or anything is written.
            UpPreflight.CheckValues(count, monitorCount, parse.GetValue(basePort), parse.GetValue(monitorPort), parse.GetValue(clientPort), parse.GetValue(httpPort), parse.GetValue(fsync)!, parse.GetValue(minInSync), folder);
            if (File.Exists(SocketPath(folder)) && await SendAsync(folder, PingCommand, quiet: true, cancellationToken) == 0)
            {
                throw new CliFailure($"a cluster is already up with data folder {folder}: use it (`./understudy status`, `./understudy kill 1`) or stop it (`exit` at its prompt)");
            }

            UpPreflight.CheckPortsFree(UpPreflight.Plan(count, monitorCount, parse.GetValue(basePort), parse.GetValue(monitorPort), parse.GetValue(clientPort), parse.GetValue(httpPort)));
            if (parse.GetValue(fresh) && Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }

            var options = new LocalClusterOptions
            {
                Servers = count,
                Monitors = monitorCount,
                BasePort = parse.GetValue(basePort),
                MonitorPort = parse.GetValue(monitorPort),
                ClientPort = parse.GetValue(clientPort),
                HttpPort = parse.GetValue(httpPort),
                DataDirectory = folder,
                Fsync = parse.GetValue(fsync)!,
                StateMachine = parse.GetValue(stateMachine) == "kv" ? BuiltInStateMachine.Kv : BuiltInStateMachine.Messages,
                ServerArguments = ["--min-in-sync", parse.GetValue(minInSync).ToString(CultureInfo.InvariantCulture)],
            };
            return await RunAsync(options, cancellationToken);
        });
        return command;
    }

    public static Option<string> DataOption() => new("--data")
    {
        Description = "Data folder of the `up` cluster (logs in DATA/logs).",
        DefaultValueFactory = _ => DefaultData,
    };

    public static string SocketPath(string folder) => Path.Combine(folder, "up.sock");

    /// <summary>Asks a running `up` whether it is there; answered without a word on its screen.</summary>
    public const string PingCommand = "ping";

    /// <summary>How long the children have to come up before `up` reports what it sees.</summary>
    private static readonly TimeSpan StartupDeadline = TimeSpan.FromSeconds(15);

    private static async Task<int> RunAsync(LocalClusterOptions options, CancellationToken cancellationToken)
    {
        var resuming = Enumerable.Range(1, options.Servers).Any(n => Directory.Exists(Path.Combine(options.DataDirectory, $"server-{options.PortOf(n)}")));
        await using var cluster = new LocalCluster(options);
        var commands = new ClusterCommands(cluster);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Console.WriteLine($"Understudy up: starting {(options.Monitors == 1 ? "a monitor" : $"{options.Monitors} monitors")} and {options.Servers} server(s) (logs in {Path.Combine(options.DataDirectory, "logs")}) ...");
        cluster.StartAll();
        await WaitForStartAsync(cluster, cancellationToken);
        if (options.Monitors == 1)
        {
            Console.WriteLine($"Understudy up: monitor on :{options.MonitorPort} (clients :{options.ClientPort}, dashboard {cluster.Dashboard?.ToString() ?? "(HTTP off)"})");
        }
        else
        {
            Console.WriteLine($"Understudy up: {options.Monitors} monitors (Raft group); clients use --monitor {string.Join(',', cluster.MonitorAddresses)}");
            foreach (var m in cluster.Monitors)
            {
                Console.WriteLine($"  monitor {m.Number}  heartbeats {m.Heartbeat}  clients {m.Client}  dashboard {m.Dashboard?.ToString() ?? "(HTTP off)"}  pid {m.Process.Pid}  log {m.Process.LogPath}");
            }
        }

        foreach (var s in cluster.Servers)
        {
            Console.WriteLine($"  server {s.Number}  {s.Address}  pid {s.Process.Pid}  log {s.Process.LogPath}");
        }

        if (resuming)
        {
            Console.WriteLine($"Resuming the data in {options.DataDirectory}: {await MessageCountAsync(cluster, cancellationToken)} (--fresh starts from an empty log)");
        }

        Console.WriteLine($"Type `help` for commands. From another terminal: ./understudy status, ./understudy kill 1, scripts/kill_server1.sh");
        await File.WriteAllTextAsync(Path.Combine(options.DataDirectory, "up.json"), JsonSerializer.Serialize(new
        {
            pid = Environment.ProcessId,
            monitor = new { port = options.MonitorPort, clientPort = options.ClientPort, httpPort = options.HttpPort, pid = cluster.Monitor.Pid },
            monitors = cluster.Monitors.Select(m => new { number = m.Number, heartbeat = m.Heartbeat.ToString(), client = m.Client.ToString(), httpPort = m.HttpPort, pid = m.Process.Pid }),
            servers = cluster.Servers.Select(s => new { number = s.Number, address = s.Address.ToString(), pid = s.Process.Pid }),
        }), cancellationToken);

        var gate = new SemaphoreSlim(1, 1);
        async Task<(string, bool)> Run(string line)
        {
            await gate.WaitAsync(stop.Token);
            try
            {
                if (ControlLine.Problem(line, cluster.Servers.Count, cluster.Monitors.Count) is { } problem)
                {
                    return (ControlLine.ErrorPrefix + problem, false);
                }

                if (line.Trim().Equals("status", StringComparison.OrdinalIgnoreCase))
                {
                    var (status, group) = await cluster.ViewAsync(stop.Token);
                    return (UpTable.Render(cluster, status, group), false);
                }

                return await commands.RunAsync(line, stop.Token);
            }
            finally
            {
                gate.Release();
            }
        }

        var control = ServeControlSocketAsync(options.DataDirectory, Run, stop);
        var view = LiveViewAsync(cluster, stop.Token);
        var input = ReadInputAsync(Run, stop);
        try
        {
            await Task.WhenAny(control, input, Task.Delay(Timeout.Infinite, stop.Token));
        }
        catch (OperationCanceledException)
        {
        }

        await stop.CancelAsync();
        Console.WriteLine("stopping the cluster…");
        foreach (var s in cluster.Servers)
        {
            s.Process.Stop(TimeSpan.FromSeconds(3));
        }

        foreach (var m in cluster.Monitors)
        {
            m.Process.Stop(TimeSpan.FromSeconds(3));
        }

        try
        {
            await Task.WhenAll(view, control);
        }
        catch (OperationCanceledException)
        {
        }

        File.Delete(SocketPath(options.DataDirectory));
        return 0;
    }

    private static async Task ReadInputAsync(Func<string, Task<(string Output, bool Exit)>> run, CancellationTokenSource stop)
    {
        while (!stop.IsCancellationRequested)
        {
            string? line;
            try
            {
                line = await Console.In.ReadLineAsync(stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (line is null)
            {
                // No terminal (run in the background): keep serving until a signal or `exit` over the socket.
                await Task.Delay(Timeout.Infinite, stop.Token);
                return;
            }

            var (output, exit) = await run(line);
            if (output.Length > 0)
            {
                Console.WriteLine(output);
            }

            if (exit)
            {
                await stop.CancelAsync();
                return;
            }
        }
    }

    /// <summary>
    /// Waits until the monitor answers with every server alive, or reports the first child that exited with the
    /// last error line of its own log (a <see cref="CliFailure"/>; the others are stopped as `up` unwinds).
    /// </summary>
    private static async Task WaitForStartAsync(LocalCluster cluster, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + StartupDeadline;
        while (DateTime.UtcNow < deadline)
        {
            var monitors = cluster.Monitors.Select(m => (Name: cluster.Monitors.Count == 1 ? "the monitor" : $"monitor {m.Number} ({m.Heartbeat})", m.Process));
            var children = monitors.Concat(cluster.Servers.Select(s => (Name: $"server {s.Number} ({s.Address})", s.Process)));
            foreach (var (name, process) in children)
            {
                if (!process.Running)
                {
                    // Give the log writer a moment to flush the child's last words.
                    await Task.Delay(100, cancellationToken);
                    throw new CliFailure($"{name} exited during start-up: {ChildLog.LastErrorLine(process.LogPath)} (log: {process.LogPath})");
                }
            }

            var status = await cluster.StatusAsync(cancellationToken);
            if (status is not null && cluster.Servers.All(s => status.Members.Any(m => m.Address == s.Address.ToString() && m.State == "alive")))
            {
                return;
            }

            await Task.Delay(100, cancellationToken);
        }

        Console.WriteLine($"(not every server reported alive within {StartupDeadline.TotalSeconds:0} s; going on: the table below shows who is up)");
    }

    private static async Task<string> MessageCountAsync(LocalCluster cluster, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(5), wait.Token);
            var count = await cluster.Admin.CountAsync(wait.Token);
            return $"{count} message(s) in the log";
        }
        catch (Exception e) when (e is OperationCanceledException or Client.UnderstudyException && !cancellationToken.IsCancellationRequested)
        {
            return "the message count is not known yet (no primary serves)";
        }
    }

    /// <summary>Prints a line whenever the primary, the epoch, the in-sync set or a server's state changes.</summary>
    private static async Task LiveViewAsync(LocalCluster cluster, CancellationToken cancellationToken)
    {
        string? last = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var status = await cluster.StatusAsync(cancellationToken);
                var line = status is null ? "monitor not answering" : Describe(cluster, status);
                if (line != last)
                {
                    Console.WriteLine($"[{DateTime.Now:HH:mm:ss.fff}] {line}");
                    last = line;
                }

                await Task.Delay(200, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static string Describe(LocalCluster cluster, ClusterStatus status)
    {
        string Name(string? address) => cluster.Servers.FirstOrDefault(s => s.Address.ToString() == address) is { } s ? $"server {s.Number} ({s.Address})" : address ?? "none";
        var down = cluster.Servers.Where(s => status.Members.FirstOrDefault(m => m.Address == s.Address.ToString()) is not { State: "alive" }).Select(s => s.Number.ToString(CultureInfo.InvariantCulture) + (s.Process.Paused ? " (paused)" : string.Empty)).ToList();
        // A stopped server stays in the primary's in-sync set until the next write; it is shown as down, not in sync.
        var inSync = cluster.Servers.Where(s => status.InSync.Contains(s.Address.ToString()) && s.Process.Running && status.Members.Any(m => m.Address == s.Address.ToString() && m.State != "down")).Select(s => s.Number.ToString(CultureInfo.InvariantCulture));
        return $"epoch {status.Epoch} · primary {Name(status.Primary)} · in sync [{string.Join(", ", inSync)}]{(down.Count > 0 ? " · down " + string.Join(", ", down) : string.Empty)} · {status.Phase}";
    }

    private static async Task ServeControlSocketAsync(string folder, Func<string, Task<(string Output, bool Exit)>> run, CancellationTokenSource stop)
    {
        var path = SocketPath(folder);
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(16);
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (client)
                {
                    await using var stream = new NetworkStream(client);
                    using var reader = new StreamReader(stream, Encoding.UTF8);
                    await using var writer = new StreamWriter(stream, Encoding.UTF8) { AutoFlush = true };
                    var line = await reader.ReadLineAsync(stop.Token);
                    if (line is null)
                    {
                        return;
                    }

                    if (line.Trim() == PingCommand)
                    {
                        await writer.WriteLineAsync("pong");
                        return;
                    }

                    Console.WriteLine($"> {line} (from another terminal)");
                    var (output, exit) = await run(line);
                    Console.WriteLine(output);
                    await writer.WriteLineAsync(output);
                    if (exit)
                    {
                        await stop.CancelAsync();
                    }
                }
            });
        }
    }

    /// <summary>Sends a command to a running `up` and prints its answer; 1 if none is running.</summary>
    public static async Task<int> SendAsync(string folder, string command, bool quiet, CancellationToken cancellationToken)
    {
        var path = SocketPath(Path.GetFullPath(folder));
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
            await using var stream = new NetworkStream(socket);
            await using var writer = new StreamWriter(stream, Encoding.UTF8) { AutoFlush = true };
            using var reader = new StreamReader(stream, Encoding.UTF8);
            await writer.WriteLineAsync(command);
            var answer = await reader.ReadToEndAsync(cancellationToken);
            if (answer.StartsWith(ControlLine.ErrorPrefix, StringComparison.Ordinal))
            {
                // The running `up` refused the command as given (no such server): a usage error here too.
                if (!quiet)
                {
                    Console.Error.Write(answer);
                }

                return ExitCodes.Usage;
            }

            if (!quiet)
            {
                Console.Write(answer);
            }

            return 0;
        }
        catch (SocketException)
        {
            if (!quiet)
            {
                Console.Error.WriteLine($"error: no `understudy up` is running with data folder {Path.GetFullPath(folder)}; start one with ./understudy up (or scripts/run.sh), or pass --data");
            }

            return 1;
        }
    }
}

/// <summary>`understudy kill|restart|pause|resume|stop N`: the original's kill scripts, against a running `up`.</summary>
internal static class ControlVerbs
{
    public static IEnumerable<Command> Create()
    {
        foreach (var (verb, what) in new[]
        {
            ("kill", "kill -9 server N (1 = port 8090, 2 = 8089, 3 = 8088), or `monitor N` (1 = port 9000, 2 = 9010, 3 = 9020)"),
            ("restart", "start server N again (or `monitor N`)"),
            ("pause", "SIGSTOP server N (or `monitor N`): it freezes with its sockets open (a hang, not a crash)"),
            ("resume", "SIGCONT server N (or `monitor N`)"),
            ("stop", "stop server N cleanly (SIGTERM), or: primary, backup1, backup2, all"),
        })
        {
            var target = new Argument<string>("target") { Description = verb == "stop" ? "N, primary, backup1, backup2 or all" : "server number N, or `monitor` followed by a monitor number" };

            // `kill monitor 2`: the monitor's number is a second word, optional (`kill monitor` is monitor 1).
            var number = new Argument<string?>("number") { Description = "With `monitor`: which monitor (1 to 5; default 1).", Arity = ArgumentArity.ZeroOrOne };
            var data = UpVerb.DataOption();
            var command = new Command(verb, $"In a running `understudy up`: {what}.") { target, data };
            if (verb != "stop")
            {
                command.Arguments.Add(number);
            }

            command.SetAction(async (parse, cancellationToken) =>
            {
                var which = parse.GetValue(target)!;
                var n = verb == "stop" ? null : parse.GetValue(number);
                if (n is not null && !which.Equals("monitor", StringComparison.OrdinalIgnoreCase))
                {
                    throw new UsageException($"{verb} {which} {n}: a second number only follows `monitor` (e.g. `{verb} monitor 2`); for a server give just its number");
                }

                // A group has at most 5 monitors; the running `up` checks against its own count.
                if (n is not null && !(int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var m) && m is >= 1 and <= 5))
                {
                    throw new UsageException($"{verb} monitor {n}: expected a monitor number from 1 to 5 (as `up` numbers them: 1 = port 9000, 2 = 9010, ...)");
                }

                var line = n is null ? $"{verb} {which}" : $"{verb} {which} {n}";
                return await UpVerb.SendAsync(parse.GetValue(data)!, line, quiet: false, cancellationToken);
            });
            yield return command;
        }
    }
}

using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Understudy.Client;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Processes;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>The `understudy` command as people and scripts use it: run as a process, its output read back.</summary>
public class CliTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Client_verb_json_survives_a_failover()
    {
        await using var test = await TestCluster.StartAsync();
        var monitor = $"127.0.0.1:{test.Cluster.Options.ClientPort}";
        var lines = Enumerable.Range(0, 200).Select(i => $"line {i} \"quoted\" ünïcode").ToList();
        using var cli = CliProcess.Start("client", "--json", "--monitor", monitor, "--timeout", "30");

        foreach (var line in lines[..100])
        {
            await cli.Input.WriteLineAsync(line);
        }

        await cli.Input.FlushAsync(TestContext.Current.CancellationToken);
        await Poll.UntilAsync(() => cli.Output.Count >= 20, Poll.DefaultTimeout, "the client verb acknowledges its first lines", () => cli.Describe(), TestContext.Current.CancellationToken);
        var primary = await test.PrimaryAsync();
        primary.Process.Kill();
        output.WriteLine($"killed the primary {primary.Address} after {cli.Output.Count} acknowledgements");

        foreach (var line in lines[100..])
        {
            await cli.Input.WriteLineAsync(line);
        }

        cli.Input.Close();
        var code = await cli.WaitForExitAsync("the client verb sends every line through the failover", TimeSpan.FromSeconds(60));
        Assert.True(code == 0, $"exit code {code}; {cli.Describe()}");
        Assert.True(cli.Errors.All(string.IsNullOrWhiteSpace), $"the client verb wrote errors: {cli.Describe()}");
        var status = await test.WaitForAsync("a new primary", s => s.Primary is not null && s.Primary != primary.Address.ToString());

        // One {"seq":N,"text":...} per input line, in order, with distinct sequence numbers.
        var acks = cli.Output.Select(ParseMessage).ToList();
        Assert.True(acks.Count == lines.Count, $"expected {lines.Count} output lines, got {acks.Count}: {cli.Describe()}");
        Assert.Equal(lines, acks.Select(a => a.Text));
        Assert.Equal(acks.Count, acks.Select(a => a.Seq).Distinct().Count());

        // And the log read back by `client read --json` holds exactly those, at those numbers.
        using var read = CliProcess.Start("client", "read", "--json", "--monitor", monitor);
        read.Input.Close();
        Assert.Equal(0, await read.WaitForExitAsync("client read --json"));
        var log = read.Output.Select(ParseMessage).ToList();
        Assert.Equal(acks.OrderBy(a => a.Seq), log);
        Assert.Equal(Enumerable.Range(1, lines.Count).Select(i => (long)i), log.Select(m => m.Seq));
        output.WriteLine($"epoch {status.Epoch}, primary {status.Primary}");
    }

    [Fact]
    public async Task Client_read_pages_with_from_and_limit_and_follow_streams_until_interrupted()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync();
        var monitor = $"127.0.0.1:{test.Cluster.Options.ClientPort}";
        var client = test.NewClient();
        for (var i = 1; i <= 20; i++)
        {
            Assert.Equal(i, await client.AppendAsync($"m{i}", ct));
        }

        using (var read = CliProcess.Start("client", "read", "--from", "5", "--limit", "7", "--monitor", monitor))
        {
            read.Input.Close();
            Assert.True(await read.WaitForExitAsync("client read --from 5 --limit 7") == 0, read.Describe());
            Assert.Equal(Enumerable.Range(5, 7).Select(i => $"{i}\tm{i}"), read.Output.Where(l => l.Length > 0));
        }

        // --count is an alias of --limit; past the end of the log the page is just shorter.
        using (var tail = CliProcess.Start("client", "read", "--from", "18", "--count", "10", "--json", "--monitor", monitor))
        {
            tail.Input.Close();
            Assert.True(await tail.WaitForExitAsync("client read --from 18 --count 10 --json") == 0, tail.Describe());
            Assert.Equal([new(18, "m18"), new(19, "m19"), new(20, "m20")], tail.Output.Where(l => l.Length > 0).Select(ParseMessage));
        }

        // --follow prints what is there, then what commits, until Ctrl+C (SIGINT): exit 130, no error printed.
        using var follow = CliProcess.Start("client", "read", "--follow", "--from", "19", "--monitor", monitor);
        await Poll.UntilAsync(() => follow.Output.Count(l => l.Length > 0) >= 2 || follow.HasExited, Poll.DefaultTimeout, "client read --follow prints the existing tail", () => follow.Describe(), ct);
        for (var i = 21; i <= 25; i++)
        {
            await client.AppendAsync($"m{i}", ct);
        }

        await Poll.UntilAsync(() => follow.Output.Count(l => l.Length > 0) >= 7 || follow.HasExited, Poll.DefaultTimeout, "client read --follow prints messages as they commit", () => follow.Describe(), ct);
        // A run started in the background by a script ignores SIGINT and so would its children: then the signal below
        // does nothing and the exit never comes (CliProcess starts them with SIGINT at its default).
        Assert.False(Posix.IgnoresSigInt(follow.Pid), "client read --follow was started ignoring SIGINT, so Ctrl+C cannot reach it");
        Assert.True(Posix.Signal(follow.Pid, Posix.SigInt), "SIGINT to client read --follow");
        // The generous default deadline, as for every other phase. What is checked is that it exits, with 130 and the
        // whole output, not how fast.
        var code = await follow.WaitForExitAsync("client read --follow after Ctrl+C", Poll.DefaultTimeout);
        Assert.True(code == 130, $"exit code {code}; {follow.Describe()}");
        Assert.True(follow.Errors.All(string.IsNullOrWhiteSpace), $"client read --follow wrote errors: {follow.Describe()}");
        Assert.Equal(Enumerable.Range(19, 7).Select(i => $"{i}\tm{i}"), follow.Output.Where(l => l.Length > 0));
    }

    [Fact]
    public async Task Status_json_lists_every_member()
    {
        await using var test = await TestCluster.StartAsync(monitorArgs: TestCluster.PatientMonitorTimings);
        var client = test.NewClient();
        for (var i = 0; i < 10; i++)
        {
            await client.AppendAsync($"s-{i}", TestContext.Current.CancellationToken);
        }

        var settled = await test.WaitForAsync("every member reports the same log end", s => s.Members.Count == 3 && s.Members.All(m => m.LogEnd == s.Members[0].LogEnd && m.LogEnd > 10));
        var primary = await test.PrimaryAsync();

        using var cli = CliProcess.Start("status", "--json", "--monitor", $"127.0.0.1:{test.Cluster.Options.ClientPort}");
        cli.Input.Close();
        Assert.True(await cli.WaitForExitAsync("status --json") == 0, cli.Describe());
        using var json = JsonDocument.Parse(string.Join('\n', cli.Output));
        var root = json.RootElement;
        output.WriteLine(root.ToString());

        Assert.Equal(settled.Epoch, root.GetProperty("epoch").GetInt64());
        Assert.True(root.GetProperty("epoch").GetInt64() >= 1);
        Assert.Equal(primary.Address.ToString(), root.GetProperty("primary").GetString());
        var members = root.GetProperty("members").EnumerateArray().ToList();
        Assert.Equal(test.Cluster.Servers.Count, members.Count);
        foreach (var server in test.Cluster.Servers)
        {
            var m = members.SingleOrDefault(x => x.GetProperty("address").GetString() == server.Address.ToString());
            Assert.True(m.ValueKind == JsonValueKind.Object, $"{server.Address} is not listed: {root}");
            Assert.Equal(server == primary ? "primary" : "backup", m.GetProperty("role").GetString());
            Assert.True(m.GetProperty("inSync").GetBoolean(), $"{server.Address} is not in sync: {m}");
            Assert.Equal(settled.Members[0].LogEnd, m.GetProperty("logEnd").GetInt64());
            Assert.Equal(server.Process.Pid, m.GetProperty("pid").GetInt32());
        }
    }

    [Fact]
    public async Task Up_leaves_no_orphans_when_killed()
    {
        var folder = Directory.CreateTempSubdirectory("understudy-up-");
        var (basePort, monitorPort, clientPort, httpPort) = PortsForUp();
        var children = new List<int>();
        try
        {
            using var up = CliProcess.StartIn(
                folder.FullName,
                "up", "--monitors", "1", "--data", Path.Combine(folder.FullName, "data"), "--base-port", Text(basePort),
                "--monitor-port", Text(monitorPort), "--client-port", Text(clientPort), "--http-port", Text(httpPort));

            // Its monitor answers, and lists the three servers up.json names, by pid.
            var upJson = Path.Combine(folder.FullName, "data", "up.json");
            await Poll.UntilAsync(() => ReadUpJson(upJson) is not null, Poll.DefaultTimeout, "up writes up.json", () => up.Describe(), TestContext.Current.CancellationToken);
            var (monitorPid, serverPids) = ReadUpJson(upJson)!.Value;
            children.Add(monitorPid);
            children.AddRange(serverPids);
            await using (var client = new UnderstudyClient(new UnderstudyClientOptions { Monitor = new NodeAddress("127.0.0.1", clientPort) }))
            {
                string last = "(no answer)";
                await Poll.UntilAsync(
                    async _ =>
                    {
                        try
                        {
                            var response = await client.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken);
                            var status = Hosting.ClusterStatus.FromJson(response.Body.Span);
                            last = status.ToJson();
                            return status.Members.Where(m => m.State == "alive").Select(m => m.Pid).Order().SequenceEqual(serverPids.Order());
                        }
                        catch (UnderstudyException e)
                        {
                            last = e.Message;
                            return false;
                        }
                    },
                    Poll.DefaultTimeout,
                    "up's monitor answers and lists up's three servers alive",
                    _ => Task.FromResult($"expected servers with pids {string.Join(", ", serverPids)}; last status: {last}; {up.Describe()}"),
                    TestContext.Current.CancellationToken);
            }

            Assert.All(children, pid => Assert.False(ProcFs.Gone(pid), $"child {pid} should be running"));
            up.KillAlone();
            Assert.NotEqual(0, await up.WaitForExitAsync("up after kill -9"));

            await Poll.UntilAsync(
                () => children.All(ProcFs.Gone),
                Poll.DefaultTimeout,
                "every child of the killed `up` exits",
                () => $"still running: {string.Join(", ", children.Where(p => !ProcFs.Gone(p)).Select(p => $"{p} ({ProcFs.State(p)})"))}",
                TestContext.Current.CancellationToken);
        }
        finally
        {
            foreach (var pid in children.Where(p => !ProcFs.Gone(p)))
            {
                Posix.Signal(pid, Posix.SigKill);
            }

            DeleteQuietly(folder);
        }
    }

    [Theory]
    [InlineData("--port", 2, "server --port 99999")]
    [InlineData("--port", 2, "server --port http")]
    [InlineData("--from", 2, "client read --from 0 --monitor 127.0.0.1:1")]
    [InlineData("--monitor", 2, "client count --monitor not-an-address")]
    [InlineData("--heartbeat-ms", 2, "monitor --heartbeat-ms 0")]
    [InlineData("--servers", 2, "up --servers 12")]
    public async Task Bad_input_gets_one_readable_line_naming_the_flag(string flag, int expectedCode, string commandLine)
    {
        using var cli = CliProcess.Start(commandLine.Split(' '));
        cli.Input.Close();
        var code = await cli.WaitForExitAsync(commandLine);
        AssertOneReadableLine(cli, code, expectedCode, flag);
    }

    [Fact]
    public async Task Port_in_use_gets_one_line_saying_which_port_and_how_to_fix_it()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var folder = Directory.CreateTempSubdirectory("understudy-busy-");
        try
        {
            var free = LocalClusterOptions.FreePorts(2);
            foreach (var (args, expectedCode) in new[]
            {
                (new[] { "server", "--port", Text(port), "--data", Path.Combine(folder.FullName, "server"), "--http-port", "0", "--monitor", $"127.0.0.1:{free[0]}" }, 1),
                (new[] { "monitor", "--port", Text(port), "--client-port", Text(free[1]), "--data", Path.Combine(folder.FullName, "monitor"), "--http-port", "0" }, 1),
                (new[] { "up", "--monitors", "1", "--data", Path.Combine(folder.FullName, "up"), "--base-port", Text(port), "--monitor-port", Text(free[0]), "--client-port", Text(free[1]), "--http-port", "0" }, 1),
            })
            {
                using var cli = CliProcess.StartIn(folder.FullName, args);
                cli.Input.Close();
                var code = await cli.WaitForExitAsync(string.Join(' ', args));
                AssertOneReadableLine(cli, code, expectedCode, Text(port));
                Assert.True(cli.Errors.Single(e => e.Length > 0).Contains("--port", StringComparison.Ordinal) || cli.Errors.Single(e => e.Length > 0).Contains("--base-port", StringComparison.Ordinal), $"the line should say which flag chooses another port: {cli.Describe()}");
            }
        }
        finally
        {
            DeleteQuietly(folder);
        }
    }

    private void AssertOneReadableLine(CliProcess cli, int code, int expectedCode, string mentions)
    {
        // A usage error adds the verb's usage line after its one error line.
        var errors = cli.Errors.Where(l => !string.IsNullOrWhiteSpace(l) && !l.StartsWith("usage: ", StringComparison.Ordinal)).ToList();
        output.WriteLine($"{cli.Command} -> exit {code}: {string.Join(" | ", errors)}");
        Assert.True(code == expectedCode, $"`{cli.Command}` exited {code}, expected {expectedCode}; {cli.Describe()}");
        Assert.True(errors.Count == 1, $"`{cli.Command}` should print one line on stderr, printed {errors.Count}:\n{string.Join("\n", errors)}");
        Assert.Contains(mentions, errors[0], StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", errors[0], StringComparison.Ordinal);
    }

    private static (long Seq, string Text) ParseMessage(string line)
    {
        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        Assert.False(root.TryGetProperty("error", out var error), $"an error line: {error}");
        return (root.GetProperty("seq").GetInt64(), root.GetProperty("text").GetString()!);
    }

    /// <summary>Ports for `up`: monitor, client API and dashboard, and a base port whose two neighbours below are free, with their HTTP ports (+100); all reserved together.</summary>
    private static (int Base, int Monitor, int Client, int Http) PortsForUp()
    {
        var basePort = PortReservations.TakeBase(servers: 3);
        var ports = LocalClusterOptions.FreePorts(3);
        return (basePort, ports[0], ports[1], ports[2]);
    }

    private static (int Monitor, int[] Servers)? ReadUpJson(string path)
    {
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var root = json.RootElement;
            var servers = root.GetProperty("servers").EnumerateArray().Select(s => s.GetProperty("pid").GetInt32()).ToArray();
            return servers.Length == 3 ? (root.GetProperty("monitor").GetProperty("pid").GetInt32(), servers) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException)
        {
            // Not written yet, or half written.
            return null;
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static void DeleteQuietly(DirectoryInfo folder)
    {
        try
        {
            folder.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A process on its way out still holds a file; the OS cleans temp folders.
        }
    }
}

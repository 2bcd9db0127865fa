using System.Globalization;

namespace Understudy.Cli.Tests;

/// <summary>The rough edges of issue 12, one test each where a real process shows them without flakiness.</summary>
public sealed class IssueTwelveTests
{
    private static string Text(int port) => port.ToString(CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("client")]
    [InlineData("client count")]
    [InlineData("client read")]
    public async Task A_client_without_a_monitor_names_the_address_it_tried_within_seconds(string verb)
    {
        using var workspace = new Workspace();
        var port = Cli.FreePort();

        // A request timeout of two minutes: "within seconds" is then the verb's own short wait for the monitor, told
        // apart from the request timeout by a bound a loaded machine's slow process start cannot reach.
        var result = await Cli.RunAsync(workspace.Root, [.. verb.Split(' '), "--monitor", $"127.0.0.1:{Text(port)}", "--timeout", "120"], TimeSpan.FromSeconds(150));

        Assert.True(result.ExitCode == 1, result.Describe());
        var line = Assert.Single(result.Errors);
        Assert.Contains($"127.0.0.1:{Text(port)}", line, StringComparison.Ordinal);
        Assert.Contains("./understudy up", line, StringComparison.Ordinal);
        Assert.Contains("--monitor", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", line, StringComparison.Ordinal);
        Assert.True(result.Took < TimeSpan.FromSeconds(60), $"took {result.Took.TotalSeconds:0.0} s, as long as the request timeout: {result.Describe()}");
    }

    [Fact]
    public async Task Up_refuses_a_taken_dashboard_port_by_name_before_starting_anything()
    {
        using var workspace = new Workspace();
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        holder.Start();
        var taken = ((System.Net.IPEndPoint)holder.LocalEndpoint).Port;
        var ports = new Dictionary<string, int>();
        var args = workspace.Expand($"up --monitors 1 --data {{data}} --base-port {{base}} --monitor-port {{port2}} --client-port {{port3}} --http-port {Text(taken)}", ports);

        var result = await Cli.RunAsync(workspace.Root, args);

        Assert.True(result.ExitCode == 1, result.Describe());
        var line = Assert.Single(result.Errors);
        Assert.Contains($"port {Text(taken)} (the dashboard) is in use", line, StringComparison.Ordinal);
        Assert.Contains("--http-port", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(workspace.Data));
        Assert.Empty(Cli.ProcessesMentioning(workspace.Root));
        Assert.All(ports.Values, p => Assert.True(Cli.NothingListensOn(p), $"port {p} is listened on after the refusal"));
    }

    /// <summary>
    /// Every other port `up` plans (its defaults are 8090/8089/8088 and their HTTP + 100, 9000, 9001, 9080; here free
    /// ones in the same layout) gets the same one line when taken: which port, whose, and the flag that moves it.
    /// </summary>
    [Theory]
    [InlineData("{port2}", 0, "the monitor's heartbeats", "--monitor-port")]
    [InlineData("{port3}", 0, "the monitor's client API", "--client-port")]
    [InlineData("{base}", 0, "server 1", "--base-port")]
    [InlineData("{base}", -2, "server 3", "--base-port")]
    [InlineData("{base}", 100, "server 1's HTTP", "--base-port")]
    public async Task Up_refuses_each_taken_port_naming_it_its_user_and_its_flag(string planned, int offset, string who, string flag)
    {
        using var workspace = new Workspace();
        var ports = new Dictionary<string, int>();
        var args = workspace.Expand("up --monitors 1 --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port 0", ports);
        var taken = ports[planned] + offset;
        using var holder = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, taken);
        holder.Start();

        var result = await Cli.RunAsync(workspace.Root, args);

        Assert.True(result.ExitCode == 1, result.Describe());
        var line = Assert.Single(result.Errors);
        Assert.Contains($"port {Text(taken)} ({who}) is in use", line, StringComparison.Ordinal);
        Assert.Contains(flag, line, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(workspace.Data), "nothing is written before the ports are checked");
    }

    [Fact]
    public async Task Up_reports_a_child_that_exits_during_start_up_with_its_own_error_line()
    {
        using var workspace = new Workspace();
        var ports = new Dictionary<string, int>();
        var args = workspace.Expand("up --monitors 1 --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port 0", ports);

        // Server 1's data folder is a file: the server exits at start with a line saying so in its log.
        Directory.CreateDirectory(workspace.Data);
        File.WriteAllText(Path.Combine(workspace.Data, $"server-{Text(ports["{base}"])}"), "in the way\n");

        var result = await Cli.RunAsync(workspace.Root, args, TimeSpan.FromSeconds(40));

        Assert.True(result.ExitCode == 1, result.Describe());
        var error = Assert.Single(result.Errors);
        Assert.StartsWith("error: server 1 (127.0.0.1:", error, StringComparison.Ordinal);
        Assert.Contains("exited during start-up", error, StringComparison.Ordinal);
        Assert.Contains("is a file, not a folder", error, StringComparison.Ordinal);
        Assert.DoesNotContain("dashboard", string.Join('\n', result.Output), StringComparison.Ordinal);
        Assert.True(await Cli.EventuallyAsync(() => Cli.ProcessesMentioning(workspace.Root).Count == 0, TimeSpan.FromSeconds(10)), "children left running");
    }

    [Fact]
    public async Task A_running_up_refuses_wrong_targets_with_exit_2_and_shows_the_truth_about_stopped_servers()
    {
        using var workspace = new Workspace();
        var ports = new Dictionary<string, int>();
        var upArgs = workspace.Expand("up --monitors 1 --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port 0", ports);
        var data = new[] { "--data", workspace.Data };
        using (var up = new RunningCli(workspace.Root, upArgs))
        {
            await up.WaitForLineAsync(l => l.Contains("in sync [1, 2, 3]", StringComparison.Ordinal), TimeSpan.FromSeconds(40));

            foreach (var wrong in new[] { "kill 7", "kill abc", "stop backup3" })
            {
                var refused = await Cli.RunAsync(workspace.Root, [.. wrong.Split(' '), .. data]);
                Assert.True(refused.ExitCode == 2, $"{wrong}: {refused.Describe()}");
                Assert.StartsWith("error: ", Assert.Single(refused.Errors), StringComparison.Ordinal);
            }

            // A second `up` is refused without printing anything on the running one's screen.
            var printed = up.Lines.Count;
            var second = await Cli.RunAsync(workspace.Root, upArgs);
            Assert.True(second.ExitCode == 1, second.Describe());
            Assert.Contains("already up", Assert.Single(second.Errors), StringComparison.Ordinal);
            Assert.DoesNotContain(up.Lines.Skip(printed), l => l.Contains("member", StringComparison.Ordinal) || l.Contains("from another terminal", StringComparison.Ordinal));

            // A stopped server: no in-sync claim and no pid in `status`.
            var stop = await Cli.RunAsync(workspace.Root, ["stop", "2", .. data]);
            Assert.True(stop.ExitCode == 0, stop.Describe());
            var server2 = $"127.0.0.1:{Text(ports["{base}"] - 1)}";
            string[]? row = null;
            Assert.True(
                await PollAsync(async () =>
                {
                    var status = await Cli.RunAsync(workspace.Root, ["status", "--monitor", $"127.0.0.1:{Text(ports["{port3}"])}"]);
                    row = status.Output.FirstOrDefault(l => l.Contains(server2, StringComparison.Ordinal))?.Split('│').Select(c => c.Trim()).ToArray();
                    return row is not null && row[4].StartsWith("down", StringComparison.Ordinal);
                }),
                "server 2 never showed as down");
            Assert.Equal("-", row![5]);
            Assert.Equal("-", row[10]);

            // The paused row of `up`'s own table stays aligned with its header.
            Assert.Equal(0, (await Cli.RunAsync(workspace.Root, ["pause", "3", .. data])).ExitCode);
            string? header = null;
            string? paused = null;
            Assert.True(
                await PollAsync(async () =>
                {
                    var from = up.Lines.Count;
                    up.Send("status");
                    var last = await up.WaitForLineAsync(l => l.Contains("(paused)", StringComparison.Ordinal) && l.Contains(" ms", StringComparison.Ordinal), TimeSpan.FromSeconds(5), from);
                    header = up.Lines.Skip(from).LastOrDefault(l => l.Contains("in sync", StringComparison.Ordinal) && l.Contains("member", StringComparison.Ordinal));
                    paused = last;
                    return paused.Contains("suspected (paused)", StringComparison.Ordinal) || paused.Contains("down (paused)", StringComparison.Ordinal);
                }),
                "server 3 never showed as suspected or down while paused");
            Assert.NotNull(header);
            var column = header!.IndexOf("in sync", StringComparison.Ordinal);
            Assert.True(paused!.Length > column && paused[column] != ' ' && paused[column - 1] == ' ' && paused[column - 2] == ' ', $"misaligned:\n{header}\n{paused}");
            Assert.Equal(0, (await Cli.RunAsync(workspace.Root, ["resume", "3", .. data])).ExitCode);

            up.Send("exit");
            Assert.Equal(0, await up.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }

        // On the same data again, `up` says it resumes it, with the message count.
        using (var again = new RunningCli(workspace.Root, upArgs))
        {
            var line = await again.WaitForLineAsync(l => l.StartsWith("Resuming the data in", StringComparison.Ordinal), TimeSpan.FromSeconds(40));
            Assert.Contains("message(s) in the log", line, StringComparison.Ordinal);
            again.Send("exit");
            Assert.Equal(0, await again.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }
    }

    [Fact]
    public async Task Help_lists_the_exit_codes_and_keeps_descriptions_near_the_left()
    {
        using var workspace = new Workspace();
        var help = await Cli.RunAsync(workspace.Root, ["--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains(help.Output, l => l.Contains("Exit codes: 0", StringComparison.Ordinal) && l.Contains("2 mistake in the command", StringComparison.Ordinal));
        var chaos = help.Output.Single(l => l.TrimStart().StartsWith("chaos ", StringComparison.Ordinal));
        Assert.True(chaos.IndexOf("Inject", StringComparison.Ordinal) < 30, chaos);
    }

    [Theory]
    [InlineData("chaos verify --help", "understudy chaos verify <run-folder>", null)]
    [InlineData("client count --help", "--timeout", "each message")]
    [InlineData("bench throughput --help", "batch (fsync every 10 ms", null)]
    public async Task Help_says_what_the_verb_does(string command, string expected, string? absent)
    {
        using var workspace = new Workspace();
        var help = await Cli.RunAsync(workspace.Root, command.Split(' '));
        Assert.Equal(0, help.ExitCode);
        var text = string.Join('\n', help.Output);
        Assert.Contains(expected, text, StringComparison.Ordinal);
        if (absent is not null)
        {
            Assert.DoesNotContain(absent, text, StringComparison.Ordinal);
        }
    }

    private static async Task<bool> PollAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(100, TestContext.Current.CancellationToken);
        }

        return false;
    }
}

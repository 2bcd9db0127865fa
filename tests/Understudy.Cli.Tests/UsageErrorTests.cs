namespace Understudy.Cli.Tests;

/// <summary>
/// Every verb with a bad value of each kind (number, range, choice, address, path, unknown word): one `error:`
/// line in our words, then the verb's usage line, exit code 2, no stack trace or .NET type name, nothing started
/// (no process left, the ports it was given still free) and nothing written (the data folder is not created).
/// </summary>
public sealed class UsageErrorTests
{
    public static TheoryData<string, string> Rows() => new()
    {
        // verb and kind of mistake -> command line
        { "no verb", "" },
        { "unknown verb", "frob" },
        { "unknown option", "server --prot 1 --data {data}" },
        { "server number", "server --port abc --data {data}" },
        { "server range", "server --port 70000 --data {data}" },
        { "server choice", "server --fsync sometimes --data {data}" },
        { "server address", "server --monitor nowhere --data {data}" },
        { "server path", "server --data {file}/sub --port {port1}" },
        { "server log level", "server --log-level loud --data {data}" },
        { "server retention age unit", "server --retention-age 7y --data {data}" },
        { "server retention age zero", "server --retention-age 0d --data {data}" },
        { "server session idle timeout", "server --session-idle-timeout soon --data {data}" },
        { "server catch-up rate", "server --catch-up-max-mbps fast --data {data}" },
        { "monitor number", "monitor --phi abc --data {data}" },
        { "monitor range", "monitor --lease-ms 0 --data {data}" },
        { "monitor path", "monitor --data {file}/sub --port {port1} --client-port {port2} --http-port 0" },
        { "client number", "client --timeout abc" },
        { "client range", "client --timeout -1" },
        { "client address", "client --monitor nowhere" },
        { "client read range", "client read --from 0" },
        { "client read number", "client read --count abc" },
        { "client count address", "client count --monitor 127.0.0.1:99999" },
        { "status address", "status --monitor nowhere" },
        { "status number", "status --interval-ms abc" },
        { "up number", "up --servers abc --data {data}" },
        { "up servers range", "up --servers 0 --data {data}" },
        { "up port range", "up --base-port 70000 --data {data}" },
        { "up choice", "up --fsync sometimes --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port {port4}" },
        { "up min-in-sync range", "up --min-in-sync 5 --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port {port4}" },
        { "up monitor port range", "up --monitor-port 0 --data {data}" },
        { "up same port twice", "up --data {data} --base-port {base} --monitor-port {port2} --client-port {port2} --http-port {port3}" },
        { "up path", "up --data {file}/sub --base-port {base} --monitor-port {port2} --client-port {port3} --http-port {port4}" },
        { "demo range", "demo --writers 0 --data {data}" },
        { "demo path", "demo --data {file}/sub" },
        { "chaos unknown scenario", "chaos nope --out {data}" },
        { "chaos no scenario", "chaos" },
        { "chaos range", "chaos kill-primary --faults 0 --out {data}" },
        { "chaos number", "chaos kill-primary --clients abc --out {data}" },
        { "chaos choice", "chaos kill-primary --fsync sometimes --out {data}" },
        { "chaos verify path", "chaos verify {data}" },
        { "simulate range", "simulate --seeds 0" },
        { "simulate servers range", "simulate --servers 10" },
        { "simulate number", "simulate --duration abc" },
        { "switchover number", "switchover --timeout abc --data {data}" },
        { "switchover address", "switchover --monitor nowhere --data {data}" },
        { "switchover target", "switchover --to abc --data {data}" },
        { "promote without force", "promote 1 --data {data}" },
        { "promote missing target", "promote --force --data {data}" },
        { "bench no sub-verb", "bench" },
        { "bench throughput range", "bench throughput --clients 0 --out {data}" },
        { "bench throughput choice", "bench throughput --fsync sometimes --out {data}" },
        { "bench throughput number", "bench throughput --seconds abc --out {data}" },
        { "bench failover choice", "bench failover --fault nope --out {data}" },
        { "bench report path", "bench report {data}" },
        { "kill missing target", "kill --data {data}" },
        { "stop extra word", "stop 1 2 --data {data}" },
        { "server monitor list address", "server --monitor 127.0.0.1:9000,nowhere --data {data}" },
        { "server monitor listed twice", "server --monitor 127.0.0.1:9000,127.0.0.1:9000 --data {data}" },
        { "server monitor list empty entry", "server --monitor 127.0.0.1:9000,,127.0.0.1:9010 --data {data}" },
        { "client monitor list address", "client --monitor 127.0.0.1:9001,nowhere" },
        { "client count monitor list too long", "client count --monitor 127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5,127.0.0.1:6" },
        { "status monitor list address", "status --monitor 127.0.0.1:9001,127.0.0.1" },
        { "switchover monitor list address", "switchover --monitor 127.0.0.1:9001,nowhere --data {data}" },
        { "promote monitor list address", "promote --force 1 --monitor 127.0.0.1:9001,nowhere --data {data}" },
        { "up monitors count", "up --monitors 2 --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port {port4}" },
        { "up monitors number", "up --monitors abc --data {data}" },
        { "up monitors port range", "up --monitors 3 --monitor-port 65530 --data {data}" },
        { "kill monitor number", "kill monitor abc --data {data}" },
        { "kill monitor range", "kill monitor 6 --data {data}" },
        { "kill server extra number", "kill 1 2 --data {data}" },
        { "resume monitor extra word", "resume monitor 1 2 --data {data}" },
        { "server state machine choice", "server --state-machine sql --data {data}" },
        { "server kv with retention", "server --state-machine kv --retention-messages 10 --data {data}" },
        { "up state machine choice", "up --state-machine sql --data {data} --base-port {base} --monitor-port {port2} --client-port {port3} --http-port {port4}" },
        { "kv no sub-verb", "kv" },
        { "kv get missing key", "kv get" },
        { "kv get stale without unit", "kv get k --stale 200" },
        { "kv get stale zero", "kv get k --stale 0ms" },
        { "kv put missing value", "kv put k" },
        { "kv put ttl word", "kv put k v --ttl soon" },
        { "kv put timeout range", "kv put k v --timeout 0" },
        { "kv cas without expectation", "kv cas k v" },
        { "kv cas with both expectations", "kv cas k v --expect a --expect-absent" },
        { "kv incr number", "kv incr k --by abc" },
        { "kv del monitor address", "kv del k --monitor nowhere" },
        { "kv get extra word", "kv get k extra" },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task A_mistake_gets_one_line_the_usage_line_and_exit_code_2(string what, string commandLine)
    {
        using var workspace = new Workspace();
        var ports = new Dictionary<string, int>();
        var args = workspace.Expand(commandLine, ports);
        var before = workspace.Entries();

        var result = await Cli.RunAsync(workspace.Root, args, TimeSpan.FromSeconds(20));

        var why = $"{what}: understudy {commandLine}\n{result.Describe()}";
        Assert.True(result.ExitCode == 2, $"expected the usage exit code 2. {why}");
        Assert.True(result.Errors.Count == 2, $"expected one error line and one usage line. {why}");
        Assert.StartsWith("error: ", result.Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("usage: understudy", result.Errors[1], StringComparison.Ordinal);
        Assert.Empty(result.Output);
        var all = string.Join('\n', result.Errors);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", all, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Nullable", all, StringComparison.Ordinal);

        // A mistake is refused at once, before anything starts or is written.
        Assert.True(result.Took < TimeSpan.FromSeconds(10), $"a usage error should be reported at once. {why}");
        Assert.False(Directory.Exists(workspace.Data), $"the data folder was created. {why}");
        Assert.Equal(before, workspace.Entries());
        Assert.Empty(Cli.ProcessesMentioning(workspace.Root));
        foreach (var (name, port) in ports)
        {
            Assert.True(Cli.NothingListensOn(port), $"{name} ({port}) is listened on after the refusal. {why}");
        }
    }
}

namespace Understudy.Cli.Tests;

/// <summary>
/// `understudy monitor` with a wrong monitor-group flag: one `error:` line that says how to fix it, the usage line,
/// exit code 2, and nothing started or written (the same contract as <see cref="UsageErrorTests"/>).
/// </summary>
public sealed class MonitorGroupUsageTests
{
    public static TheoryData<string, string> Rows() => new()
    {
        { "peers address", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --peers 127.0.0.1:{port1},nowhere,127.0.0.1:9020" },
        { "peers without self", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --peers 127.0.0.1:9000,127.0.0.1:9010,127.0.0.1:9020" },
        { "peers even", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --peers 127.0.0.1:{port1},127.0.0.1:9010" },
        { "peers twice", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --peers 127.0.0.1:{port1},127.0.0.1:{port1},127.0.0.1:9020" },
        { "peers raft port", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --peers 127.0.0.1:{port1}/abc,127.0.0.1:9010,127.0.0.1:9020" },
        { "coordinator choice", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --coordinator zookeeper" },
        { "raft without peers", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --coordinator raft" },
        { "file with peers", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --coordinator file --peers 127.0.0.1:{port1},127.0.0.1:9010,127.0.0.1:9020" },
        { "raft port others cannot derive", "monitor --port {port1} --client-port {port2} --raft-port {port3} --http-port 0 --data {data} --peers 127.0.0.1:{port1},127.0.0.1:9010,127.0.0.1:9020" },
        { "raft port range", "monitor --port {port1} --client-port {port2} --raft-port 70000 --http-port 0 --data {data} --peers 127.0.0.1:{port1},127.0.0.1:9010,127.0.0.1:9020" },
        { "etcd without endpoints", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --coordinator etcd --peers 127.0.0.1:{port1},127.0.0.1:9010,127.0.0.1:9020" },
        { "etcd endpoint not a url", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --coordinator etcd --etcd-endpoints nowhere --peers 127.0.0.1:{port1},127.0.0.1:9010,127.0.0.1:9020" },
        { "etcd endpoints without etcd", "monitor --port {port1} --client-port {port2} --http-port 0 --data {data} --etcd-endpoints http://127.0.0.1:2379" },
    };

    [Theory]
    [MemberData(nameof(Rows))]
    public async Task A_wrong_group_flag_gets_one_line_the_usage_line_and_exit_code_2(string what, string commandLine)
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
        Assert.StartsWith("usage: understudy monitor", result.Errors[1], StringComparison.Ordinal);
        Assert.Empty(result.Output);
        Assert.DoesNotContain("Exception", string.Join('\n', result.Errors), StringComparison.Ordinal);
        Assert.False(Directory.Exists(workspace.Data), $"the data folder was created. {why}");
        Assert.Equal(before, workspace.Entries());
        foreach (var (name, port) in ports)
        {
            Assert.True(Cli.NothingListensOn(port), $"{name} ({port}) is listened on after the refusal. {why}");
        }
    }
}

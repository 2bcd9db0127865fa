namespace Understudy.Cli.Tests;

/// <summary>
/// `understudy monitor` with a wrong monitor-group flag: one `error:` line that says how to fix it, the usage line,
/// exit code 2, and nothing started or written (the same contract as <see cref="UsageErrorTests"/>, checked by
/// <see cref="UsageRefusal"/>).
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
    public Task A_wrong_group_flag_gets_one_line_the_usage_line_and_exit_code_2(string what, string commandLine) =>
        UsageRefusal.AssertRefusedAsync(what, commandLine, "usage: understudy monitor");
}

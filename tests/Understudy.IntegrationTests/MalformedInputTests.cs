using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Understudy.Orchestration.Workloads;
using Understudy.Protocol;

namespace Understudy.IntegrationTests;

/// <summary>
/// Hostile bytes on every protocol port: each gets a ProtocolError frame and a closed connection, and the
/// process keeps serving everybody else.
/// </summary>
public class MalformedInputTests(ITestOutputHelper output)
{
    private static readonly byte[] ClientHello = MessageCodec.ToFrame(new Hello(PeerRole.Client, NodeAddress.None, 42, 4242, false));

    /// <summary>What to send, and the error code the process must answer with.</summary>
    private static IEnumerable<(string Name, byte[] Bytes, ProtocolErrorCode Code, string? Mentions)> Payloads()
    {
        yield return ("garbage (a negative length)", [0xFF, 0xFF, 0xFF, 0xFF, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02], ProtocolErrorCode.MalformedFrame, null);
        yield return ("a zero length", [0, 0, 0, 0, 0x32], ProtocolErrorCode.MalformedFrame, null);
        yield return ("a truncated Hello", [3, 0, 0, 0, (byte)MessageType.Hello, 0xAB, 0xCD], ProtocolErrorCode.MalformedFrame, null);

        var oversize = new byte[16];
        BinaryPrimitives.WriteInt32LittleEndian(oversize, int.MaxValue);
        oversize[4] = (byte)MessageType.ClientRequest;
        yield return ("an oversize length prefix", oversize, ProtocolErrorCode.FrameTooLarge, "limit");

        yield return ("an unknown message type", [1, 0, 0, 0, 0xEE], ProtocolErrorCode.MalformedFrame, "unknown message type");
        yield return ("an unknown message type after a good handshake", [.. ClientHello, .. ClientHello, 1, 0, 0, 0, 0xEE], ProtocolErrorCode.MalformedFrame, "unknown message type");
        yield return ("a malformed request after a good handshake", [.. ClientHello, .. ClientHello, 3, 0, 0, 0, (byte)MessageType.ClientRequest, 1, 2], ProtocolErrorCode.MalformedFrame, null);
        yield return ("an HTTP request line", Encoding.ASCII.GetBytes("GET /cluster HTTP/1.1\r\nHost: localhost\r\n\r\n"), ProtocolErrorCode.MalformedFrame, "HTTP");
    }

    [Fact]
    public async Task Malformed_frame_to_each_port_gets_a_protocol_error_and_the_process_keeps_serving()
    {
        await using var test = await TestCluster.StartAsync(servers: 2, monitorArgs: TestCluster.PatientMonitorTimings);
        await using var work = new Workload();
        var client = test.NewClient();
        var primary = await test.PrimaryAsync();
        var backup = test.ServersExcept(primary).Single();
        var ports = new (string Name, int Port)[]
        {
            ("the primary's port", primary.Address.Port),
            ("a backup's port", backup.Address.Port),
            ("the monitor's heartbeat port", test.Cluster.Options.MonitorPort),
            ("the monitor's client port", test.Cluster.Options.ClientPort),
        };
        var pids = test.Cluster.Servers.Select(s => s.Process).Append(test.Cluster.Monitor).ToDictionary(p => p.Name, p => p.Pid);

        var round = 0;
        foreach (var (portName, port) in ports)
        {
            foreach (var (name, bytes, code, mentions) in Payloads())
            {
                var frames = await SendRawAsync(port, bytes, $"{name} to {portName}");
                var error = frames.OfType<ProtocolError>().ToList();
                Assert.True(error.Count == 1, $"{name} to {portName}: expected one ProtocolError before the close, got {Describe(frames)}");
                Assert.True(frames[^1] is ProtocolError, $"{name} to {portName}: the ProtocolError must be the last frame, got {Describe(frames)}");
                Assert.True(error[0].Code == code, $"{name} to {portName}: expected {code}, got {error[0].Code}: {error[0].Message}");
                Assert.False(string.IsNullOrWhiteSpace(error[0].Message), $"{name} to {portName}: the error says nothing");
                if (mentions is not null)
                {
                    Assert.True(error[0].Message.Contains(mentions, StringComparison.Ordinal), $"{name} to {portName}: expected the error to mention '{mentions}': {error[0].Message}");
                }

                output.WriteLine($"{portName} <- {name}: {error[0].Code}: {error[0].Message}");
            }

            // Everybody else is still served: writes, reads and the status.
            round++;
            var seq = await work.Recorder.AppendAsync(client, 1, $"after-{round}", TestContext.Current.CancellationToken);
            Assert.True(seq == round, $"after the garbage to {portName}: append acknowledged as {seq?.ToString() ?? work.Recorder.LastErrors()}, expected {round}");
            var read = await work.Recorder.ReadAsync(client, 1, 1, 100, TestContext.Current.CancellationToken);
            Assert.True(read is not null && read.Count == round, $"after the garbage to {portName}: read {read?.Count.ToString() ?? work.Recorder.LastErrors()} messages, expected {round}");
            var status = await test.WaitHealthyAsync($"status after the garbage to {portName}");
            Assert.Equal(primary.Address.ToString(), status.Primary);
        }

        foreach (var p in test.Cluster.Servers.Select(s => s.Process).Append(test.Cluster.Monitor))
        {
            Assert.True(p.Running && p.Pid == pids[p.Name], $"{p.Name} must still be the same running process");
        }

        work.AssertValid(await client.ReadAllAsync(TestContext.Current.CancellationToken), output);
    }

    /// <summary>
    /// Opens a raw TCP connection, sends <paramref name="bytes"/>, and reads frames until the process closes the
    /// connection (which it must, within the deadline).
    /// </summary>
    private static async Task<List<IMessage>> SendRawAsync(int port, byte[] bytes, string what)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), TestContext.Current.CancellationToken);
        await socket.SendAsync(bytes, SocketFlags.None, TestContext.Current.CancellationToken);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(20));
        var received = new ArrayBufferWriter<byte>();
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(received.GetMemory(4096), SocketFlags.None, deadline.Token);
                if (n == 0)
                {
                    break;
                }

                received.Advance(n);
            }
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            Assert.Fail($"{what}: the connection was not closed within 20 s; received {Describe(Decode(received.WrittenMemory))}");
        }
        catch (SocketException e)
        {
            Assert.Fail($"{what}: the connection broke ({e.SocketErrorCode}) instead of closing after a ProtocolError; received {Describe(Decode(received.WrittenMemory))}");
        }

        return Decode(received.WrittenMemory);
    }

    private static List<IMessage> Decode(ReadOnlyMemory<byte> bytes)
    {
        var buffer = new ReadOnlySequence<byte>(bytes);
        var frames = new List<IMessage>();
        while (MessageCodec.TryReadFrame(ref buffer, MessageCodec.DefaultMaxFrameSize, out var type, out var body))
        {
            frames.Add(MessageCodec.Decode(type, body));
        }

        Assert.True(buffer.Length == 0, $"{buffer.Length} bytes after the last whole frame");
        return frames;
    }

    private static string Describe(List<IMessage> frames) =>
        frames.Count == 0 ? "no frames" : string.Join(", ", frames.Select(f => f is ProtocolError e ? $"ProtocolError({e.Code}: {e.Message})" : f.Type.ToString()));
}

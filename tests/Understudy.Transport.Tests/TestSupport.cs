using System.Buffers;
using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Understudy.Orchestration.Clusters;
using Understudy.Orchestration.Polling;

namespace Understudy.Transport.Tests;

/// <summary>Which transport a test runs over.</summary>
public enum TransportKind
{
    Tcp,
    Memory,
}

internal static class Test
{
    /// <summary>Every wait in these tests has this deadline: generous for a loaded 2-core machine (load 40 seen while other tests run), short enough to fail within the run.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    /// <summary>Loopback with a port the OS (or the in-memory network) picks.</summary>
    public static readonly NodeAddress AnyPort = new("127.0.0.1", 0);

    public static readonly NodeAddress ServerAddress = new("127.0.0.1", 8090);

    /// <summary>Reconnection in milliseconds, seeded; a fresh one per peer (a <see cref="Random"/> is not thread-safe).</summary>
    public static ReconnectOptions FastReconnect() => new()
    {
        InitialBackoff = TimeSpan.FromMilliseconds(5),
        MaxBackoff = TimeSpan.FromMilliseconds(50),
        ConnectTimeout = TimeSpan.FromSeconds(5),
        Random = new Random(42),
    };

    public static CancellationToken Token => TestContext.Current.CancellationToken;

    public static ITransport Create(TransportKind kind) => kind == TransportKind.Tcp ? new TcpTransport() : new InMemoryTransport();

    public static FrameConnectionOptions Options(PeerRole role, ILogger? logger = null, byte[]? key = null, int maxFrameSize = MessageCodec.DefaultMaxFrameSize) => new()
    {
        Role = role,
        LocalAddress = role == PeerRole.Client ? NodeAddress.None : ServerAddress,
        Incarnation = 7,
        ClusterKey = key ?? ReadOnlyMemory<byte>.Empty,
        MaxFrameSize = maxFrameSize,
        Logger = logger ?? new TestLogger(),
    };

    public static async Task<T> Within<T>(this Task<T> task) => await task.WaitAsync(Deadline, Token);

    public static async Task Within(this Task task) => await task.WaitAsync(Deadline, Token);

    public static async Task<T> Within<T>(this ValueTask<T> task) => await task.AsTask().WaitAsync(Deadline, Token);

    /// <summary>Waits for a condition, polling on the thread pool, with the deadline.</summary>
    public static Task Eventually(Func<bool> condition, string what) =>
        Poll.UntilAsync(condition, Deadline, $"waiting until {what}", () => "it is still not so", Token);

    /// <summary>
    /// A port free now and handed out to no other test of this process (<see cref="PortReservations"/>): below the
    /// ephemeral range, so no listener the other tests bind on port 0 meanwhile can take it (a port bound on port 0 and
    /// released could be the very next one the OS hands out).
    /// </summary>
    public static Task<NodeAddress> FreeTcpPortAsync() => Task.FromResult(new NodeAddress("127.0.0.1", PortReservations.Take(1)[0]));

    public static string Hex(IMessage message) => Convert.ToHexString(MessageCodec.ToFrame(message));
}

/// <summary>A handler that queues what it receives, for the test to read in order.</summary>
internal sealed class Inbox
{
    private readonly Channel<(FrameConnection Connection, IMessage Message)> _messages = Channel.CreateUnbounded<(FrameConnection, IMessage)>();

    public FrameHandler Handler => (connection, message, _) =>
    {
        _messages.Writer.TryWrite((connection, message));
        return ValueTask.CompletedTask;
    };

    public async Task<IMessage> NextAsync() => (await _messages.Reader.ReadAsync(Test.Token).AsTask().Within()).Message;

    public async Task<(FrameConnection Connection, IMessage Message)> NextWithConnectionAsync() => await _messages.Reader.ReadAsync(Test.Token).AsTask().Within();
}

/// <summary>A message of any type byte and body, to send what no well-behaved peer would.</summary>
internal readonly record struct RawMessage(MessageType Type, byte[] Body) : IMessage
{
    public int Size => Body.Length;

    public void Format(Span<byte> destination) => Body.CopyTo(destination);
}

/// <summary>An ILogger that keeps every line, for asserting what was logged.</summary>
internal sealed class TestLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, EventId Id, string Text)> _lines = new();

    public IReadOnlyList<(LogLevel Level, EventId Id, string Text)> Lines => [.. _lines];

    public IEnumerable<string> Warnings => Lines.Where(l => l.Level >= LogLevel.Warning).Select(l => l.Text);

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _lines.Enqueue((logLevel, eventId, formatter(state, exception)));
}

/// <summary>A transport connection driven by hand: writes any bytes, reads frames back.</summary>
internal sealed class RawPeer(ITransportConnection connection) : IAsyncDisposable
{
    public ITransportConnection Connection { get; } = connection;

    public static async Task<RawPeer> ConnectAsync(ITransport transport, NodeAddress address) =>
        new(await transport.ConnectAsync(address, Test.Token).Within());

    public async Task SendAsync(byte[] bytes) => await Connection.Output.WriteAsync(bytes, Test.Token);

    public Task SendAsync<T>(in T message)
        where T : IMessage => SendAsync(MessageCodec.ToFrame(message));

    /// <summary>The next frame as (type, body bytes), or null when the other side has closed.</summary>
    public async Task<(MessageType Type, byte[] Body)?> ReadFrameAsync()
    {
        var input = Connection.Input;
        while (true)
        {
            var result = await input.ReadAsync(Test.Token).AsTask().Within();
            var buffer = result.Buffer;
            if (MessageCodec.TryReadFrame(ref buffer, MessageCodec.DefaultMaxFrameSize, out var type, out var body))
            {
                var bytes = body.ToArray();
                input.AdvanceTo(buffer.Start);
                return (type, bytes);
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    /// <summary>Reads until the other side closes; returns every frame on the way.</summary>
    public async Task<List<(MessageType Type, byte[] Body)>> ReadToEndAsync()
    {
        var frames = new List<(MessageType, byte[])>();
        while (await ReadFrameAsync() is { } frame)
        {
            frames.Add(frame);
        }

        return frames;
    }

    public async Task CloseOutputAsync() => await Connection.Output.CompleteAsync();

    public async ValueTask DisposeAsync()
    {
        await Connection.Output.CompleteAsync();
        await Connection.Input.CompleteAsync();
        await Connection.DisposeAsync();
    }
}

/// <summary>A server over a transport with an inbox and a logger, disposed with the test.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private TestServer(FrameServer server, Inbox inbox, TestLogger logger, ConcurrentQueue<FrameConnection> accepted)
    {
        Server = server;
        Inbox = inbox;
        Logger = logger;
        Accepted = accepted;
    }

    public FrameServer Server { get; }

    public Inbox Inbox { get; }

    public TestLogger Logger { get; }

    public ConcurrentQueue<FrameConnection> Accepted { get; }

    public NodeAddress Address => Server.LocalAddress;

    public static async Task<TestServer> StartAsync(ITransport transport, Func<FrameConnectionOptions, FrameConnectionOptions>? configure = null, FrameHandler? handler = null, NodeAddress? address = null)
    {
        var logger = new TestLogger();
        var inbox = new Inbox();
        var accepted = new ConcurrentQueue<FrameConnection>();
        var options = Test.Options(PeerRole.Server, logger);
        options = configure?.Invoke(options) ?? options;
        var server = await FrameServer.StartAsync(transport, address ?? Test.AnyPort, options, handler ?? inbox.Handler, accepted.Enqueue, Test.Token).Within();
        return new TestServer(server, inbox, logger, accepted);
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}

/// <summary>
/// A server that takes the first frame and then stops reading until <see cref="Release"/>: what a client sends next
/// fills the socket's buffers and backs up in its writer. <see cref="Inbox"/> holds what it read.
/// </summary>
internal sealed class StalledServer : IAsyncDisposable
{
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TestServer? _server;

    public Inbox Inbox { get; } = new();

    public NodeAddress Address => _server!.Address;

    public static async Task<StalledServer> StartAsync(ITransport transport)
    {
        var stalled = new StalledServer();
        stalled._server = await TestServer.StartAsync(transport, handler: async (connection, message, cancellationToken) =>
        {
            await stalled.Inbox.Handler(connection, message, cancellationToken);
            await stalled._gate.Task.WaitAsync(cancellationToken);
        });
        return stalled;
    }

    /// <summary>Reads again, and from now on never stops.</summary>
    public void Release() => _gate.TrySetResult();

    public ValueTask DisposeAsync() => _server?.DisposeAsync() ?? ValueTask.CompletedTask;
}

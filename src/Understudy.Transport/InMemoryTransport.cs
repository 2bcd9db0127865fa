using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Threading.Channels;
using Understudy.Protocol;

namespace Understudy.Transport;

/// <summary>
/// Connections inside one process, for tests: each is a pair of pipes. It keeps TCP's rules that
/// matter to the layers above: connecting where nothing listens is refused, listening on a taken address
/// fails, port 0 gets a free port, closing one side ends the other's input, and a reader that stops
/// reading eventually stops the writer.
/// </summary>
public sealed class InMemoryTransport : ITransport
{
    /// <summary>First port handed out for port 0, as the OS would pick from its ephemeral range.</summary>
    private const int FirstEphemeralPort = 49152;

    private readonly ConcurrentDictionary<NodeAddress, Listener> _listeners = new();
    private readonly PipeOptions _pipeOptions;
    private int _nextPort = FirstEphemeralPort;
    private long _nextClientPort;

    /// <param name="maxBufferedBytes">
    /// Bytes a pipe holds before its writer waits. It must exceed the largest frame the connections accept,
    /// or a frame that large could never be read whole.
    /// </param>
    public InMemoryTransport(long maxBufferedBytes = 2L * MessageCodec.DefaultMaxFrameSize) =>
        _pipeOptions = new PipeOptions(pauseWriterThreshold: maxBufferedBytes, resumeWriterThreshold: maxBufferedBytes / 2, useSynchronizationContext: false);

    /// <inheritdoc />
    public ValueTask<IConnectionListener> ListenAsync(NodeAddress endpoint, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (endpoint.Port == 0)
        {
            while (true)
            {
                var candidate = endpoint with { Port = Interlocked.Increment(ref _nextPort) };
                var listener = new Listener(this, candidate);
                if (_listeners.TryAdd(candidate, listener))
                {
                    return ValueTask.FromResult<IConnectionListener>(listener);
                }
            }
        }

        var fixedListener = new Listener(this, endpoint);
        if (!_listeners.TryAdd(endpoint, fixedListener))
        {
            throw new TransportException(TransportError.AddressInUse, $"Cannot listen on {endpoint}: port {endpoint.Port} is already in use in this in-memory network; dispose the other listener or choose another port.");
        }

        return ValueTask.FromResult<IConnectionListener>(fixedListener);
    }

    /// <inheritdoc />
    public ValueTask<ITransportConnection> ConnectAsync(NodeAddress endpoint, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!_listeners.TryGetValue(endpoint, out var listener))
        {
            throw new TransportException(TransportError.Refused, $"Connection to {endpoint} refused: nothing listens there.");
        }

        var toServer = new Pipe(_pipeOptions);
        var toClient = new Pipe(_pipeOptions);
        var clientName = $"memory:{Interlocked.Increment(ref _nextClientPort)}";
        var client = new Connection(toClient.Reader, toServer.Writer, endpoint.ToString());
        var server = new Connection(toServer.Reader, toClient.Writer, clientName);
        if (!listener.Offer(server))
        {
            throw new TransportException(TransportError.Refused, $"Connection to {endpoint} refused: nothing listens there.");
        }

        return ValueTask.FromResult<ITransportConnection>(client);
    }

    private sealed class Listener(InMemoryTransport owner, NodeAddress address) : IConnectionListener
    {
        private readonly Channel<Connection> _backlog = Channel.CreateUnbounded<Connection>();

        public NodeAddress LocalAddress { get; } = address;

        public bool Offer(Connection connection) => _backlog.Writer.TryWrite(connection);

        public async ValueTask<ITransportConnection?> AcceptAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await _backlog.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException)
            {
                return null;
            }
        }

        public async ValueTask DisposeAsync()
        {
            owner._listeners.TryRemove(new KeyValuePair<NodeAddress, Listener>(LocalAddress, this));
            _backlog.Writer.TryComplete();

            // Connections nobody accepted are reset, as the kernel does when a listening socket closes.
            while (_backlog.Reader.TryRead(out var pending))
            {
                await pending.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private sealed class Connection(PipeReader input, PipeWriter output, string remote) : ITransportConnection
    {
        private int _disposed;

        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;

        public string RemoteEndPoint { get; } = remote;

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                await Output.CompleteAsync().ConfigureAwait(false);
                await Input.CompleteAsync().ConfigureAwait(false);
            }
        }
    }
}

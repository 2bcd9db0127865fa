using System.Net;
using System.Net.Sockets;

namespace Understudy.Coordination.Tests.Raft;

/// <summary>
/// A TCP relay in front of one member's Raft endpoint that can be cut: while <see cref="Cut"/> is set it keeps every
/// connection open and accepts new ones, but drops the bytes, as a network partition does (no reset, only silence).
/// </summary>
internal sealed class PartitionProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<TcpClient> _open = [];
    private readonly Task _accepting;
    private volatile bool _cut;

    public PartitionProxy(int targetPort)
    {
        _target = new IPEndPoint(IPAddress.Loopback, targetPort);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync(_stop.Token);
    }

    /// <summary>Where the others dial this member.</summary>
    public int Port { get; }

    public bool Cut
    {
        get => _cut;
        set => _cut = value;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_gate)
        {
            foreach (var client in _open)
            {
                client.Dispose();
            }

            _open.Clear();
        }

        await _accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task AcceptAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var inbound = await _listener.AcceptTcpClientAsync(cancellationToken);
            _ = RelayAsync(inbound, cancellationToken);
        }
    }

    private async Task RelayAsync(TcpClient inbound, CancellationToken cancellationToken)
    {
        var outbound = new TcpClient();
        Track(inbound);
        Track(outbound);
        try
        {
            await outbound.ConnectAsync(_target, cancellationToken);
            var a = inbound.GetStream();
            var b = outbound.GetStream();
            await Task.WhenAny(PumpAsync(a, b, cancellationToken), PumpAsync(b, a, cancellationToken));
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // A member went away or the proxy stopped: the connection ends, as it would on a real network.
        }
        finally
        {
            inbound.Dispose();
            outbound.Dispose();
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, cancellationToken)) > 0)
            {
                if (!_cut)
                {
                    await to.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Either side closed.
        }
    }

    private void Track(TcpClient client)
    {
        lock (_gate)
        {
            _open.Add(client);
        }
    }
}

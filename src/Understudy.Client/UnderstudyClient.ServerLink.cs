using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.Client;

// The connection to one server.
public sealed partial class UnderstudyClient
{
    /// <summary>
    /// The connection to one server. Requests made before it is up wait for it (a new primary is used the
    /// moment the push arrives, so dropping them would cost a whole attempt timeout); if it cannot connect,
    /// the session hears of it and retries elsewhere.
    /// </summary>
    private sealed class ServerLink : IAsyncDisposable
    {
        private readonly UnderstudyClient _client;
        private readonly NodeAddress _address;
        private readonly BufferedPeer _peer;

        public ServerLink(UnderstudyClient client, NodeAddress address)
        {
            _client = client;
            _address = address;
            _peer = new BufferedPeer(client._transport, address, client._connectionOptions, HandleAsync, new ReconnectOptions { InitialBackoff = TimeSpan.FromMilliseconds(10), MaxBackoff = TimeSpan.FromMilliseconds(500), ConnectTimeout = TimeSpan.FromSeconds(1) }, sendNow: true);
            _peer.Disconnected += _ => client.Post(() => client._session.OnServerConnectionLost(address));
            _peer.Start();
        }

        public void Send(in ClientRequest request) => _peer.Send(request);

        private ValueTask HandleAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
        {
            if (message is ClientResponse response)
            {
                // Handled here, on the reader's thread, under the gate: the caller's task completes without a hop
                // through the loop (its continuation still runs on the thread pool, never on this reader).
                lock (_client._gate)
                {
                    try
                    {
                        if (!_client._detached)
                        {
                            _client.NoteServerAnswer(response.Status);
                            _client._session.Handle(_address, response);
                        }
                    }
                    catch (Exception e)
                    {
                        // As the loop does: one bad answer is logged, and neither the connection nor the client stops.
                        ClientLog.LoopError(_client._logger, e);
                    }
                }
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => _peer.DisposeAsync();
    }
}

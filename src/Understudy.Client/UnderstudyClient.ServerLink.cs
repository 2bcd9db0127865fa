using Understudy.Core.Client;
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

        // The calls this link's reader ended under the gate (CallResumption.Reader); only that reader touches it.
        private readonly List<(TaskCompletionSource<ClientResult> Done, ClientResult Result)> _finished = [];

        public ServerLink(UnderstudyClient client, NodeAddress address)
        {
            _client = client;
            _address = address;
            // What callers resumed on the reader sent while it handled one read's answers goes out together at its end.
            var options = client._connectionOptions with { AfterReadBatch = _ => _peer!.FlushHeld() };
            _peer = new BufferedPeer(client._transport, address, options, HandleAsync, new ReconnectOptions { InitialBackoff = TimeSpan.FromMilliseconds(10), MaxBackoff = TimeSpan.FromMilliseconds(500), ConnectTimeout = TimeSpan.FromSeconds(1) }, sendNow: true);
            _peer.Disconnected += _ => client.Post(() => client._session.OnServerConnectionLost(address));
            _peer.Start();
        }

        // The thread this link's reader runs callers on (ResumeCallers), while it does; 0 otherwise.
        private int _resumingOn;

        public void Send(in ClientRequest request)
        {
            // A request a caller resumed on this link's reader makes on this link waits until the reader has handled
            // every answer of the read (FrameConnectionOptions.AfterReadBatch), and they go out in one write: clients
            // that share a connection send their next requests together, as the server answered them together.
            if (Volatile.Read(ref _resumingOn) == Environment.CurrentManagedThreadId)
            {
                _peer.SendHeld(request);
            }
            else
            {
                _peer.Send(request);
            }
        }

        private ValueTask HandleAsync(FrameConnection connection, IMessage message, CancellationToken cancellationToken)
        {
            if (message is ClientResponse response)
            {
                // Handled here, on the reader's thread, under the gate: the caller's task completes without a hop
                // through the loop. Its continuation runs on the thread pool, or with CallResumption.Reader on this
                // reader, after the gate is released.
                var reader = _client._options.ResumeOn == CallResumption.Reader;
                lock (_client._gate)
                {
                    try
                    {
                        if (!_client._detached)
                        {
                            _client._readerFinished = reader ? _finished : null;
                            _client.NoteServerAnswer(response.Status);
                            _client._session.Handle(_address, response);
                        }
                    }
                    catch (Exception e)
                    {
                        // As the loop does: one bad answer is logged, and neither the connection nor the client stops.
                        ClientLog.LoopError(_client._logger, e);
                    }
                    finally
                    {
                        _client._readerFinished = null;
                    }
                }

                ResumeCallers();
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => _peer.DisposeAsync();

        /// <summary>Outside the gate: completes the calls this reader ended, running each caller's code here, in turn.</summary>
        private void ResumeCallers()
        {
            if (_finished.Count == 0)
            {
                return;
            }

            // Nothing adds to the list meanwhile: only this reader does, under the gate, and it reads no more answers
            // until this returns (a caller's next call that ends at once goes to the thread pool, see Finish).
            Volatile.Write(ref _resumingOn, Environment.CurrentManagedThreadId);
            try
            {
                for (var i = 0; i < _finished.Count; i++)
                {
                    var (done, result) = _finished[i];
                    _finished[i] = default;
                    done.TrySetResult(result);
                }
            }
            finally
            {
                Volatile.Write(ref _resumingOn, 0);
                _finished.Clear();
            }
        }
    }
}

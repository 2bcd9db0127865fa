using Understudy.Core.Client;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.Client;

// Operator commands to the monitor group, following a refusal to the active monitor.
public sealed partial class UnderstudyClient
{
    /// <summary>How many times an operator command follows a refusal naming the active monitor before giving up.</summary>
    private const int MaxAdminRedirects = 4;

    /// <summary>
    /// An operator command to the monitor group (status, events, switchover, forced promotion): sent to the monitor this
    /// client is connected to; a monitor that is not the active one refuses commands that change the cluster and names the
    /// active one, and the command is sent there instead (on a connection of its own, closed after the answer).
    /// </summary>
    /// <exception cref="UnderstudyException">No answer within <paramref name="timeout"/>, an active monitor that cannot be
    /// reached, or the client was disposed.</exception>
    public async Task<AdminResponse> AdminAsync(AdminCommand command, NodeAddress target, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var asked = _monitor.Current;
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

            // One bound for the whole call (sending and redirects included), so nothing inside it can outlive the deadline.
            return await RunAdminAsync(command, target, cancellationToken).WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The monitor the group connection went to kept it open and said nothing: the next call tries another.
            if (_options.Monitors.Count > 1)
            {
                _monitor.Abandon(asked);
            }

            throw new UnderstudyException($"no monitor of {Describe(_options.Monitors)} answered within {timeout.TotalSeconds:0.#} s", OutcomeKind.Unknown);
        }
        catch (ObjectDisposedException)
        {
            throw new UnderstudyException($"the client was disposed before the monitor ({Describe(_options.Monitors)}) answered", OutcomeKind.Unknown);
        }
    }

    private async Task<AdminResponse> RunAdminAsync(AdminCommand command, NodeAddress target, CancellationToken cancellationToken)
    {
        var response = await AskMonitorAsync(command, target, NodeAddress.None, cancellationToken).ConfigureAwait(false);
        for (var redirect = 0; redirect < MaxAdminRedirects && ActiveNamedBy(response) is { IsNone: false } active; redirect++)
        {
            // The refusal names the active monitor by its heartbeat address. When its client address cannot be told from
            // the list this client was given (monitors on arbitrary ports), every listed monitor is asked in turn: only
            // the active one takes the command.
            var mapped = ClientAddressOf(active);
            var candidates = _options.Monitors.Contains(mapped) ? [mapped] : (List<NodeAddress>)[mapped, .. _options.Monitors];
            TransportException? lastFailure = null;
            var answered = false;
            foreach (var address in candidates)
            {
                try
                {
                    response = await AskMonitorAsync(command, target, address, cancellationToken).ConfigureAwait(false);
                    answered = true;
                }
                catch (TransportException e)
                {
                    lastFailure = e;
                    continue;
                }

                if (!response.IsNotActiveRefusal)
                {
                    return response;
                }
            }

            if (!answered)
            {
                throw new UnderstudyException($"the active monitor is {active} (client address {mapped}), which did not take the command: {lastFailure?.Message}", OutcomeKind.Failed);
            }
        }

        return response;
    }

    /// <summary>
    /// One request and its answer: through the group connection when <paramref name="direct"/> is none or the monitor it
    /// already goes to, otherwise on a connection to <paramref name="direct"/> opened for it.
    /// </summary>
    private async Task<AdminResponse> AskMonitorAsync(AdminCommand command, NodeAddress target, NodeAddress direct, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref _adminIds);
        var done = new TaskCompletionSource<AdminResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        _admin[id] = done;
        try
        {
            var request = new AdminRequest(id, command, target);
            if (direct.IsNone || direct == _monitor.Current)
            {
                return await SendAdminAsync(request, done.Task, cancellationToken).ConfigureAwait(false);
            }

            var connection = await FrameConnection.ConnectAsync(_transport, direct, _connectionOptions, HandleMonitorAsync, cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                connection.Send(request);
                return await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            _admin.TryRemove(id, out _);
        }
    }

    /// <summary>The active monitor a refusal names (its heartbeat address), or none for any other answer.</summary>
    private static NodeAddress ActiveNamedBy(in AdminResponse response) => response.IsNotActiveRefusal ? response.ActiveMonitor : NodeAddress.None;

    /// <summary>
    /// A refusal names the active monitor by its heartbeat address H, which is how the group knows its members; a client
    /// talks to its client address, H's port + 1 unless the monitor was started with another --client-port. A listed
    /// address that fits is preferred (it is what the operator gave); otherwise that default.
    /// </summary>
    internal NodeAddress ClientAddressOf(NodeAddress heartbeat)
    {
        var byDefault = heartbeat with { Port = heartbeat.Port + 1 };
        return _options.Monitors.Contains(byDefault) || !_options.Monitors.Contains(heartbeat) ? byDefault : heartbeat;
    }

    private static string Describe(IReadOnlyList<NodeAddress> monitors) => string.Join(",", monitors);

    private async Task<AdminResponse> SendAdminAsync(AdminRequest request, Task<AdminResponse> answer, CancellationToken cancellationToken)
    {
        // Dropped while no monitor is reachable: try again until connected (the caller's deadline ends this).
        while (!_monitor.Send(request))
        {
            await Task.WhenAny(answer, Task.Delay(20, cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            if (answer.IsCompleted)
            {
                return await answer.ConfigureAwait(false);
            }
        }

        return await answer.ConfigureAwait(false);
    }
}

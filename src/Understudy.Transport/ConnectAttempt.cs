namespace Understudy.Transport;

/// <summary>
/// One connection attempt bounded by a connect timeout, as every reconnecting link makes them (a server's peer links,
/// a client's monitor rotation): the connection, or why there is none, in the words a <see cref="ConnectionClosed"/> uses.
/// </summary>
public static class ConnectAttempt
{
    /// <summary>
    /// Runs <paramref name="connect"/> with a token that also fires after <paramref name="connectTimeout"/>. Throws
    /// <see cref="OperationCanceledException"/> only when <paramref name="stopping"/> fired (the caller is shutting down).
    /// </summary>
    public static async Task<(FrameConnection? Connection, ConnectionClosed Failure)> RunAsync(Func<CancellationToken, ValueTask<FrameConnection>> connect, TimeSpan connectTimeout, CancellationToken stopping)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        attempt.CancelAfter(connectTimeout);
        try
        {
            return (await connect(attempt.Token).ConfigureAwait(false), default);
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return (null, new ConnectionClosed(TransportError.TimedOut, $"no connection within {connectTimeout.TotalSeconds:0.###} s"));
        }
        catch (TransportException e)
        {
            return (null, new ConnectionClosed(e.Error, e.Message));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Anything else a connect can throw (a socket error the transport did not wrap) is a reset link: the
            // caller backs off and tries again rather than dying.
            return (null, new ConnectionClosed(TransportError.Reset, e.Message));
        }
    }
}

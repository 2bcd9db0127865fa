using Understudy.Protocol;

namespace Understudy.Core.Client;

/// <summary>How a call ended.</summary>
public enum OutcomeKind
{
    /// <summary>Done: for a write, applied exactly once.</summary>
    Ok,

    /// <summary>Definitely not applied (refused, or never sent).</summary>
    Failed,

    /// <summary>The deadline passed after the request was sent: it may or may not have been applied.</summary>
    Unknown,
}

/// <summary>The end of one call: result or error, and who answered in which epoch.</summary>
public readonly record struct ClientResult(long Seq, RequestKind Kind, OutcomeKind Outcome, ReadOnlyMemory<byte> Payload, long Epoch, NodeAddress Server, string Error, int Attempts);

/// <summary>What a client reports about itself.</summary>
public readonly record struct ClientEvent(ClientEventKind Kind, long Epoch, NodeAddress Primary, string Detail);

public enum ClientEventKind
{
    PrimaryChanged,
    Retrying,

    /// <summary>The servers expired this client's session; it goes on under a new client id.</summary>
    SessionRenewed,
}

/// <summary>What a <see cref="ClientSession"/> asks of the world.</summary>
public interface IClientEnvironment
{
    void SendToServer(NodeAddress server, in ClientRequest request);

    /// <summary>Asks the monitor who the primary is (and subscribes to changes).</summary>
    void QueryMonitor();

    void Complete(in ClientResult result);

    void Report(in ClientEvent e);
}

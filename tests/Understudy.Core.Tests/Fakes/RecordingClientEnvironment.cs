using Understudy.Core.Client;

namespace Understudy.Core.Tests.Fakes;

/// <summary>Records what a <see cref="ClientSession"/> sends and completes.</summary>
public sealed class RecordingClientEnvironment : IClientEnvironment
{
    public List<(NodeAddress To, ClientRequest Request)> Sent { get; } = [];

    public List<ClientResult> Completed { get; } = [];

    public List<ClientEvent> Events { get; } = [];

    public int MonitorQueries { get; private set; }

    public List<ClientRequest> SentTo(NodeAddress server) => [.. Sent.Where(s => s.To == server).Select(s => s.Request)];

    public void SendToServer(NodeAddress server, in ClientRequest request) => Sent.Add((server, request));

    public void QueryMonitor() => MonitorQueries++;

    public void Complete(in ClientResult result) => Completed.Add(result);

    public void Report(in ClientEvent e) => Events.Add(e);
}

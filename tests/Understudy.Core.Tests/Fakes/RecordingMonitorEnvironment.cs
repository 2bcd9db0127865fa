namespace Understudy.Core.Tests.Fakes;

/// <summary>One call a <see cref="MonitorNode"/> made on its environment, in the order made.</summary>
public abstract record MonitorCall;

public sealed record MonitorSentToServer(NodeAddress To, IMessage Message) : MonitorCall;

public sealed record MonitorSentToClient(ClientRef Client, IMessage Message) : MonitorCall;

public sealed record Probed(NodeAddress Server) : MonitorCall;

public sealed record Proposed(long ExpectedVersion, ClusterConfig Next) : MonitorCall;

public sealed record MonitorReported(MonitorEvent Event) : MonitorCall;

/// <summary>Records every call a monitor makes; the test plays the configuration store and the network.</summary>
public sealed class RecordingMonitorEnvironment : IMonitorEnvironment
{
    public List<MonitorCall> Calls { get; } = [];

    public IEnumerable<T> Of<T>()
        where T : MonitorCall => Calls.OfType<T>();

    public List<Proposed> Proposals => [.. Of<Proposed>()];

    public List<T> SentTo<T>(NodeAddress to)
        where T : IMessage =>
        [.. Of<MonitorSentToServer>().Where(s => s.To == to).Select(s => s.Message).OfType<T>()];

    public List<T> SentToServers<T>()
        where T : IMessage =>
        [.. Of<MonitorSentToServer>().Select(s => s.Message).OfType<T>()];

    public List<T> SentToClient<T>(ClientRef client)
        where T : IMessage =>
        [.. Of<MonitorSentToClient>().Where(s => s.Client == client).Select(s => s.Message).OfType<T>()];

    public List<MonitorEvent> Events => [.. Of<MonitorReported>().Select(r => r.Event)];

    public void Clear() => Calls.Clear();

    public void SendToServer<T>(NodeAddress server, in T message)
        where T : IMessage => Calls.Add(new MonitorSentToServer(server, message));

    public void SendToClient<T>(ClientRef client, in T message)
        where T : IMessage => Calls.Add(new MonitorSentToClient(client, message));

    public void Probe(NodeAddress server) => Calls.Add(new Probed(server));

    public void ProposeConfig(long expectedVersion, ClusterConfig next) => Calls.Add(new Proposed(expectedVersion, next));

    public void Report(MonitorEvent e) => Calls.Add(new MonitorReported(e));
}

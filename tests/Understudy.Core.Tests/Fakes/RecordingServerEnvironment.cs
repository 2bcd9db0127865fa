using Understudy.Core.Replication;
using Understudy.Protocol;

namespace Understudy.Core.Tests.Fakes;

/// <summary>One call a <see cref="ServerNode"/> made on its environment, in the order made.</summary>
public abstract record ServerCall;

public sealed record SentToMonitor(IMessage Message) : ServerCall;

public sealed record SentToServer(NodeAddress To, IMessage Message) : ServerCall;

public sealed record Replied(ClientRef Client, ClientResponse Response) : ServerCall;

public sealed record AppendedLog(LogEntry[] Entries) : ServerCall;

public sealed record TruncatedLog(long FromIndex) : ServerCall;

public sealed record SyncRequested(long ThroughIndex, long Generation) : ServerCall;

public sealed record SavedEpoch(long Epoch) : ServerCall;

public sealed record Reported(ServerEvent Event) : ServerCall;

public sealed record SnapshotSaveRequested(long Index, long Epoch, byte[] State) : ServerCall;

public sealed record CompactedLog(long BelowIndex) : ServerCall;

/// <summary>Records every call a server makes, so tests can assert what it did and in which order.</summary>
public sealed class RecordingServerEnvironment : IServerEnvironment
{
    public List<ServerCall> Calls { get; } = [];

    public IEnumerable<T> Of<T>()
        where T : ServerCall => Calls.OfType<T>();

    /// <summary>Messages of type <typeparamref name="T"/> sent to <paramref name="to"/>.</summary>
    public List<T> SentTo<T>(NodeAddress to)
        where T : IMessage =>
        [.. Of<SentToServer>().Where(s => s.To == to).Select(s => s.Message).OfType<T>()];

    /// <summary>Messages of type <typeparamref name="T"/> sent to the monitor.</summary>
    public List<T> ToMonitor<T>()
        where T : IMessage =>
        [.. Of<SentToMonitor>().Select(s => s.Message).OfType<T>()];

    public List<ClientResponse> RepliesTo(ClientRef client) =>
        [.. Of<Replied>().Where(r => r.Client == client).Select(r => r.Response)];

    public List<ClientResponse> Replies => [.. Of<Replied>().Select(r => r.Response)];

    public List<ServerEvent> Events => [.. Of<Reported>().Select(r => r.Event)];

    public List<ServerEvent> EventsOf(ServerEventKind kind) => [.. Events.Where(e => e.Kind == kind)];

    public List<LogEntry> Appended => [.. Of<AppendedLog>().SelectMany(a => a.Entries)];

    public List<SyncRequested> Syncs => [.. Of<SyncRequested>()];

    /// <summary>Position of the first call matching <paramref name="match"/>, or -1.</summary>
    public int IndexOf(Func<ServerCall, bool> match) => Calls.FindIndex(c => match(c));

    public void Clear() => Calls.Clear();

    public void SendToMonitor<T>(in T message)
        where T : IMessage => Calls.Add(new SentToMonitor(message));

    public void SendToServer<T>(NodeAddress to, in T message)
        where T : IMessage => Calls.Add(new SentToServer(to, message));

    public void Reply(ClientRef client, in ClientResponse response) => Calls.Add(new Replied(client, response));

    public void AppendLog(ReadOnlySpan<LogEntry> entries) => Calls.Add(new AppendedLog(entries.ToArray()));

    public void TruncateLog(long fromIndex) => Calls.Add(new TruncatedLog(fromIndex));

    public void SyncLog(long throughIndex, long generation) => Calls.Add(new SyncRequested(throughIndex, generation));

    public void SaveEpoch(long epoch) => Calls.Add(new SavedEpoch(epoch));

    public void Report(in ServerEvent e) => Calls.Add(new Reported(e));

    public void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot) => Calls.Add(new SnapshotSaveRequested(index, epoch, snapshot.ToArray()));

    public void CompactLog(long belowIndex) => Calls.Add(new CompactedLog(belowIndex));
}

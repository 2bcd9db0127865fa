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

public sealed record ResetLogCall(long AfterIndex, long Epoch) : ServerCall;

public sealed record SnapshotInstallBegun(long Index, long Epoch, long TotalLength, long Held) : ServerCall;

public sealed record SnapshotChunkWritten(long Index, long Offset, int Length) : ServerCall;

public sealed record SnapshotInstallCompleted(long Index, bool Sound) : ServerCall;

/// <summary>Records every call a server makes, so tests can assert what it did and in which order.</summary>
public sealed class RecordingServerEnvironment : IServerEnvironment
{
    // The snapshot being received: which one and the bytes held (a partial file that survives a new role).
    private (long Index, long Total, List<byte> Bytes)? _receiving;

    public List<ServerCall> Calls { get; } = [];

    /// <summary>Snapshots "on disk" by index: saved ones (stored as soon as asked) and installed ones; streamed as they are.</summary>
    public Dictionary<long, byte[]> StoredSnapshots { get; } = [];

    /// <summary>When set, the next completed install fails its whole-file check (a damaged snapshot).</summary>
    public bool DamageNextInstall { get; set; }

    /// <summary>Bytes of the snapshot being received, from its start.</summary>
    public int ReceivingLength => _receiving?.Bytes.Count ?? 0;

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

    public void SaveSnapshot(long index, long epoch, ReadOnlyMemory<byte> snapshot)
    {
        Calls.Add(new SnapshotSaveRequested(index, epoch, snapshot.ToArray()));
        StoredSnapshots[index] = snapshot.ToArray();
    }

    public void CompactLog(long belowIndex) => Calls.Add(new CompactedLog(belowIndex));

    public long SnapshotLength(long index) => StoredSnapshots.TryGetValue(index, out var s) ? s.Length : 0;

    public int ReadSnapshot(long index, long offset, Span<byte> destination)
    {
        if (!StoredSnapshots.TryGetValue(index, out var s) || offset >= s.Length)
        {
            return 0;
        }

        var n = (int)Math.Min(destination.Length, s.Length - offset);
        s.AsSpan((int)offset, n).CopyTo(destination);
        return n;
    }

    public long BeginSnapshotInstall(long index, long epoch, long totalLength)
    {
        if (_receiving is not { } r || r.Index != index || r.Total != totalLength)
        {
            _receiving = (index, totalLength, []);
        }

        Calls.Add(new SnapshotInstallBegun(index, epoch, totalLength, _receiving.Value.Bytes.Count));
        return _receiving.Value.Bytes.Count;
    }

    public void WriteSnapshotChunk(long index, long offset, ReadOnlySpan<byte> chunk)
    {
        if (_receiving is not { } r || r.Index != index || offset != r.Bytes.Count)
        {
            throw new InvalidOperationException($"chunk of snapshot {index} at {offset} does not continue what is held ({_receiving?.Bytes.Count})");
        }

        r.Bytes.AddRange(chunk.ToArray());
        Calls.Add(new SnapshotChunkWritten(index, offset, chunk.Length));
    }

    public ReadOnlyMemory<byte>? CompleteSnapshotInstall(long index)
    {
        var r = _receiving ?? throw new InvalidOperationException("no install under way");
        _receiving = null;
        if (DamageNextInstall)
        {
            DamageNextInstall = false;
            Calls.Add(new SnapshotInstallCompleted(index, false));
            return null;
        }

        var bytes = r.Bytes.ToArray();
        StoredSnapshots[index] = bytes;
        Calls.Add(new SnapshotInstallCompleted(index, true));
        return bytes;
    }

    public void ResetLog(long afterIndex, long epoch) => Calls.Add(new ResetLogCall(afterIndex, epoch));
}

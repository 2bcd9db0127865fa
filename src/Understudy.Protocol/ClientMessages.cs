namespace Understudy.Protocol;

/// <summary>Whether a client request changes the state (goes through the log) or only reads it, and how fresh a read must be.</summary>
public enum RequestKind : byte
{
    Write = 1,

    /// <summary>A linearizable read: served only by the primary, under its lease, once its epoch has committed.</summary>
    Read = 2,

    /// <summary>
    /// A read a backup may serve, NOT linearizable: it may miss writes acknowledged up to about the lag it allows
    /// (payload: <see cref="StaleReadPayload"/>). A backup serves it only when it heard from its primary within that
    /// lag and has applied everything the primary said was committed; otherwise it refuses (<see cref="ResponseStatus.NotPrimary"/>)
    /// and the client asks the primary, which answers it as a <see cref="Read"/>.
    /// </summary>
    StaleRead = 3,
}

/// <summary>The payload of a <see cref="RequestKind.StaleRead"/>: the lag allowed (milliseconds, 8 bytes), then the query.</summary>
public static class StaleReadPayload
{
    public static byte[] Encode(TimeSpan maxLag, ReadOnlySpan<byte> query)
    {
        var bytes = new byte[8 + query.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(bytes, (long)maxLag.TotalMilliseconds);
        query.CopyTo(bytes.AsSpan(8));
        return bytes;
    }

    /// <summary>False when the payload is too short or the lag is negative.</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> payload, out TimeSpan maxLag, out ReadOnlyMemory<byte> query)
    {
        maxLag = TimeSpan.Zero;
        query = default;
        if (payload.Length < 8)
        {
            return false;
        }

        var ms = System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(payload.Span);
        if (ms < 0 || ms > (long)TimeSpan.MaxValue.TotalMilliseconds)
        {
            return false;
        }

        maxLag = TimeSpan.FromMilliseconds(ms);
        query = payload[8..];
        return true;
    }
}

/// <summary>How a server answered.</summary>
public enum ResponseStatus : byte
{
    /// <summary>Done; the payload is the result.</summary>
    Ok = 1,

    /// <summary>This server is not the primary; <see cref="ClientResponse.Primary"/> names the one it knows.</summary>
    NotPrimary = 2,

    /// <summary>The primary cannot serve right now (lease lapsed, too few in sync, switchover); retry.</summary>
    Unavailable = 3,

    /// <summary>The request itself is wrong and was not applied; retrying will not help.</summary>
    Rejected = 4,

    /// <summary>
    /// The client's session expired (idle past the servers' timeout, or evicted): the server no longer knows whether
    /// this write was applied, so it is refused, never applied twice; its outcome is unknown. The client starts a new
    /// session for later writes.
    /// </summary>
    SessionExpired = 5,
}

/// <summary>
/// Client to server. (<see cref="ClientId"/>, <see cref="Seq"/>) names a write across retries, so a
/// retry after a failover returns the first result. <see cref="FirstIncomplete"/> is the client's
/// lowest write still waiting for an answer: results below it may be forgotten.
/// </summary>
public readonly record struct ClientRequest(ulong ClientId, long Seq, long FirstIncomplete, RequestKind Kind, ReadOnlyMemory<byte> Payload) : IMessage<ClientRequest>
{
    public MessageType Type => MessageType.ClientRequest;

    public int Size => 8 + 8 + 8 + 1 + 4 + Payload.Length;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteUInt64(ClientId);
        w.WriteInt64(Seq);
        w.WriteInt64(FirstIncomplete);
        w.WriteByte((byte)Kind);
        w.WriteBytes(Payload.Span);
    }

    public static ClientRequest Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(ClientRequest));
        var m = new ClientRequest(r.ReadUInt64("clientId"), r.ReadInt64("seq"), r.ReadInt64("firstIncomplete"), r.ReadEnum("kind", RequestKind.StaleRead), r.ReadBytes("payload"));
        r.End();
        return m;
    }
}

/// <summary>Server to client: the answer to request <see cref="Seq"/>, stamped with the server's epoch.</summary>
public readonly record struct ClientResponse(ulong ClientId, long Seq, ResponseStatus Status, long Epoch, NodeAddress Primary, ReadOnlyMemory<byte> Payload) : IMessage<ClientResponse>
{
    public MessageType Type => MessageType.ClientResponse;

    public int Size => 8 + 8 + 1 + 8 + WireWriter.SizeOf(Primary) + 4 + Payload.Length;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteUInt64(ClientId);
        w.WriteInt64(Seq);
        w.WriteByte((byte)Status);
        w.WriteInt64(Epoch);
        w.WriteAddress(Primary);
        w.WriteBytes(Payload.Span);
    }

    public static ClientResponse Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(ClientResponse));
        var m = new ClientResponse(r.ReadUInt64("clientId"), r.ReadInt64("seq"), r.ReadEnum("status", ResponseStatus.SessionExpired), r.ReadInt64("epoch"), r.ReadAddress("primary"), r.ReadBytes("payload"));
        r.End();
        return m;
    }

    /// <summary>The payload read as UTF-8 text (error explanations travel this way).</summary>
    public string PayloadText => System.Text.Encoding.UTF8.GetString(Payload.Span);
}

/// <summary>Client to monitor: who is primary? With <see cref="Subscribe"/>, also push every change.</summary>
public readonly record struct PrimaryQuery(ulong ClientId, bool Subscribe) : IMessage<PrimaryQuery>
{
    public MessageType Type => MessageType.PrimaryQuery;

    public int Size => 8 + 1;

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteUInt64(ClientId);
        w.WriteBool(Subscribe);
    }

    public static PrimaryQuery Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(PrimaryQuery));
        var m = new PrimaryQuery(r.ReadUInt64("clientId"), r.ReadBool("subscribe"));
        r.End();
        return m;
    }
}

/// <summary>
/// Monitor to client: the primary of <see cref="Epoch"/> (or none yet). A follower monitor also names the active one in
/// <see cref="ActiveMonitor"/>, so a subscribed client can move there: the active monitor pushes a promotion at its
/// commit, a follower only once Raft has told it of the commit.
/// </summary>
public readonly record struct PrimaryUpdate(long Epoch, long ConfigVersion, NodeAddress Primary) : IMessage<PrimaryUpdate>
{
    /// <summary>
    /// From a follower that knows the active monitor: the active monitor's server-facing address, as the group knows
    /// it; <see cref="NodeAddress.None"/> from the active monitor itself, a group of one, or a follower that knows of none.
    /// </summary>
    public NodeAddress ActiveMonitor { get; init; } = NodeAddress.None;

    public MessageType Type => MessageType.PrimaryUpdate;

    public int Size => 8 + 8 + WireWriter.SizeOf(Primary) + WireWriter.SizeOf(ActiveMonitor);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt64(Epoch);
        w.WriteInt64(ConfigVersion);
        w.WriteAddress(Primary);
        w.WriteAddress(ActiveMonitor);
    }

    public static PrimaryUpdate Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(PrimaryUpdate));
        var m = new PrimaryUpdate(r.ReadInt64("epoch"), r.ReadInt64("configVersion"), r.ReadAddress("primary"))
        {
            ActiveMonitor = r.ReadAddress("activeMonitor"),
        };
        r.End();
        return m;
    }
}

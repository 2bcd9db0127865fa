namespace Understudy.Protocol;

/// <summary>The first byte of every frame: which message follows.</summary>
public enum MessageType : byte
{
    // server <-> monitor, on the heartbeat port
    Heartbeat = 1,
    HeartbeatAck = 2,
    ConfigPush = 3,
    InSyncChange = 4,
    InSyncChangeResult = 5,
    StepDown = 6,
    StepDownResult = 7,

    // primary <-> backup
    Replicate = 10,
    ReplicateAck = 11,
    SnapshotChunk = 12,
    SnapshotAck = 13,

    // client <-> server
    ClientRequest = 20,
    ClientResponse = 21,

    // client <-> monitor, on the client API port
    PrimaryQuery = 30,
    PrimaryUpdate = 31,

    // operator <-> monitor, on the client API port
    AdminRequest = 40,
    AdminResponse = 41,

    // any connection
    Hello = 50,
    ProtocolError = 51,
}

/// <summary>
/// A protocol message: a struct that knows its encoded size and writes itself into a span
/// (the frame header is the codec's business, not the message's).
/// </summary>
public interface IMessage
{
    MessageType Type { get; }

    /// <summary>Exact bytes <see cref="Format"/> writes.</summary>
    int Size { get; }

    /// <summary>Writes the body into <paramref name="destination"/>, which holds at least <see cref="Size"/> bytes.</summary>
    void Format(Span<byte> destination);
}

/// <summary>A message that can also read itself back.</summary>
public interface IMessage<TSelf> : IMessage
    where TSelf : struct, IMessage<TSelf>
{
    /// <summary>Reads a body; throws <see cref="ProtocolException"/> for anything malformed.</summary>
    static abstract TSelf Parse(ReadOnlySpan<byte> source);
}

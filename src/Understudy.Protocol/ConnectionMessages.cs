namespace Understudy.Protocol;

/// <summary>Who opened a connection.</summary>
public enum PeerRole : byte
{
    Server = 1,
    Monitor = 2,
    Client = 3,
    Admin = 4,
}

/// <summary>
/// The first frame on every connection, both ways. <see cref="Nonce"/> is fresh per connection; when
/// the cluster has a key, every later frame from a member is authenticated over the other side's nonce,
/// so a frame recorded on one connection cannot be replayed on another. <see cref="StateMachine"/> names the state
/// machine a server runs (empty for monitors and clients): two servers running different ones refuse each other,
/// since neither could apply the other's log.
/// </summary>
public readonly record struct Hello(PeerRole Role, NodeAddress From, ulong Incarnation, ulong Nonce, bool Authenticated, string StateMachine = "") : IMessage<Hello>
{
    /// <summary>Bumped when the wire layout changes incompatibly.</summary>
    public const int ProtocolVersion = 1;

    public MessageType Type => MessageType.Hello;

    public int Size => 4 + 1 + WireWriter.SizeOf(From) + 8 + 8 + 1 + WireWriter.SizeOf(StateMachine);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteInt32(ProtocolVersion);
        w.WriteByte((byte)Role);
        w.WriteAddress(From);
        w.WriteUInt64(Incarnation);
        w.WriteUInt64(Nonce);
        w.WriteBool(Authenticated);
        w.WriteString(StateMachine);
    }

    public static Hello Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(Hello));
        var version = r.ReadInt32("protocolVersion");
        if (version != ProtocolVersion)
        {
            throw new ProtocolException($"Hello: protocol version {version}, this build speaks {ProtocolVersion}; run the same Understudy version everywhere");
        }

        var m = new Hello(r.ReadEnum("role", PeerRole.Admin), r.ReadAddress("from"), r.ReadUInt64("incarnation"), r.ReadUInt64("nonce"), r.ReadBool("authenticated"));

        // The state machine's name came later than the rest: a Hello without it is from a peer that does not say.
        if (r.Remaining > 0)
        {
            m = m with { StateMachine = r.ReadString("stateMachine") };
        }

        r.End();
        return m;
    }
}

/// <summary>Why a connection is being closed by the side that sends this.</summary>
public enum ProtocolErrorCode : ushort
{
    MalformedFrame = 1,
    FrameTooLarge = 2,
    UnexpectedMessage = 3,
    AuthenticationFailed = 4,
    VersionMismatch = 5,

    /// <summary>Two servers run different state machines (<c>--state-machine</c>): one cluster runs one.</summary>
    StateMachineMismatch = 6,
}

/// <summary>Sent just before closing a connection that broke the protocol.</summary>
public readonly record struct ProtocolError(ProtocolErrorCode Code, string Message) : IMessage<ProtocolError>
{
    public MessageType Type => MessageType.ProtocolError;

    public int Size => 2 + WireWriter.SizeOf(Message);

    public void Format(Span<byte> destination)
    {
        var w = new WireWriter(destination);
        w.WriteUInt16((ushort)Code);
        w.WriteString(Message);
    }

    public static ProtocolError Parse(ReadOnlySpan<byte> source)
    {
        var r = new WireReader(source, nameof(ProtocolError));
        var m = new ProtocolError((ProtocolErrorCode)r.ReadUInt16("code"), r.ReadString("message"));
        r.End();
        return m;
    }
}

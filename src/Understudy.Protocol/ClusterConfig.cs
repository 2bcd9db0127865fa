using System.Collections.Immutable;
using System.Text;

namespace Understudy.Protocol;

/// <summary>A server the monitor knows, and how eager it is to be promoted.</summary>
public readonly record struct MemberInfo(NodeAddress Address, int Priority);

/// <summary>
/// The cluster's configuration, owned by the monitor: who is primary in which epoch, which
/// servers hold every acknowledged write (the in-sync set), and who the members are.
/// Every change bumps <see cref="Version"/> and goes through a compare-and-set on it.
/// </summary>
public sealed record ClusterConfig
{
    /// <summary>The configuration before any server has been seen.</summary>
    public static readonly ClusterConfig Initial = new()
    {
        Epoch = 0,
        Version = 0,
        Primary = NodeAddress.None,
        InSync = [],
        Members = [],
    };

    /// <summary>Raised by one at each promotion; one primary per epoch.</summary>
    public required long Epoch { get; init; }

    /// <summary>Raised by one at every change of any field.</summary>
    public required long Version { get; init; }

    /// <summary>The primary of <see cref="Epoch"/>, or <see cref="NodeAddress.None"/>.</summary>
    public required NodeAddress Primary { get; init; }

    /// <summary>Servers holding every acknowledged write, the primary included; sorted.</summary>
    public required ImmutableArray<NodeAddress> InSync { get; init; }

    /// <summary>Every server the monitor has seen; sorted by address.</summary>
    public required ImmutableArray<MemberInfo> Members { get; init; }

    public bool IsInSync(NodeAddress address) => InSync.Contains(address);

    public bool IsMember(NodeAddress address)
    {
        foreach (var m in Members)
        {
            if (m.Address == address)
            {
                return true;
            }
        }

        return false;
    }

    public int PriorityOf(NodeAddress address)
    {
        foreach (var m in Members)
        {
            if (m.Address == address)
            {
                return m.Priority;
            }
        }

        return address.Port;
    }

    /// <summary>A copy with the in-sync set replaced (sorted) and the version raised.</summary>
    public ClusterConfig WithInSync(IEnumerable<NodeAddress> inSync) =>
        this with { InSync = [.. inSync.Distinct().Order()], Version = Version + 1 };

    /// <summary>A copy with a member added or its priority updated, and the version raised.</summary>
    public ClusterConfig WithMember(MemberInfo member)
    {
        var members = Members.Where(m => m.Address != member.Address).Append(member).OrderBy(m => m.Address);
        return this with { Members = [.. members], Version = Version + 1 };
    }

    /// <summary>Field-by-field equality (the arrays by content).</summary>
    public bool SameAs(ClusterConfig other) =>
        Epoch == other.Epoch && Version == other.Version && Primary == other.Primary &&
        InSync.SequenceEqual(other.InSync) && Members.SequenceEqual(other.Members);

    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append("epoch=").Append(Epoch).Append(" version=").Append(Version)
          .Append(" primary=").Append(Primary)
          .Append(" in-sync=[").Append(string.Join(",", InSync)).Append(']')
          .Append(" members=[").Append(string.Join(",", Members.Select(m => m.Address))).Append(']');
        return sb.ToString();
    }

    internal int Size
    {
        get
        {
            var size = 8 + 8 + WireWriter.SizeOf(Primary) + 4 + 4;
            foreach (var a in InSync)
            {
                size += WireWriter.SizeOf(a);
            }

            foreach (var m in Members)
            {
                size += WireWriter.SizeOf(m.Address) + 4;
            }

            return size;
        }
    }

    internal void Format(ref WireWriter w)
    {
        w.WriteInt64(Epoch);
        w.WriteInt64(Version);
        w.WriteAddress(Primary);
        w.WriteInt32(InSync.Length);
        foreach (var a in InSync)
        {
            w.WriteAddress(a);
        }

        w.WriteInt32(Members.Length);
        foreach (var m in Members)
        {
            w.WriteAddress(m.Address);
            w.WriteInt32(m.Priority);
        }
    }

    internal static ClusterConfig Parse(ref WireReader r)
    {
        var epoch = r.ReadInt64("config.epoch");
        var version = r.ReadInt64("config.version");
        var primary = r.ReadAddress("config.primary");
        var inSyncCount = r.ReadCount("config.inSync", 6);
        var inSync = ImmutableArray.CreateBuilder<NodeAddress>(inSyncCount);
        for (var i = 0; i < inSyncCount; i++)
        {
            inSync.Add(r.ReadAddress("config.inSync"));
        }

        var memberCount = r.ReadCount("config.members", 10);
        var members = ImmutableArray.CreateBuilder<MemberInfo>(memberCount);
        for (var i = 0; i < memberCount; i++)
        {
            members.Add(new MemberInfo(r.ReadAddress("config.members"), r.ReadInt32("config.priority")));
        }

        if (epoch < 0 || version < 0)
        {
            throw new ProtocolException($"configuration has negative epoch ({epoch}) or version ({version})");
        }

        return new ClusterConfig
        {
            Epoch = epoch,
            Version = version,
            Primary = primary,
            InSync = inSync.MoveToImmutable(),
            Members = members.MoveToImmutable(),
        };
    }

    /// <summary>Encodes the configuration alone (the durable store and tests use this).</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[Size];
        var w = new WireWriter(bytes);
        Format(ref w);
        return bytes;
    }

    /// <summary>Decodes what <see cref="ToBytes"/> wrote.</summary>
    public static ClusterConfig FromBytes(ReadOnlySpan<byte> bytes)
    {
        var r = new WireReader(bytes, "configuration");
        var config = Parse(ref r);
        r.End();
        return config;
    }
}

using System.Collections.Immutable;

namespace Understudy.Core.Tests.Fakes;

/// <summary>The original project's three servers, and helpers to build configurations and entries.</summary>
public static class Cluster
{
    /// <summary>Server 1, the original primary (port 8090).</summary>
    public static readonly NodeAddress P = new("127.0.0.1", 8090);

    /// <summary>Server 2 (port 8089).</summary>
    public static readonly NodeAddress B1 = new("127.0.0.1", 8089);

    /// <summary>Server 3 (port 8088).</summary>
    public static readonly NodeAddress B2 = new("127.0.0.1", 8088);

    public static readonly NodeAddress[] All = [P, B1, B2];

    /// <summary>A configuration whose members are <see cref="All"/> (priority = port) unless given.</summary>
    public static ClusterConfig Config(long epoch, long version, NodeAddress primary, NodeAddress[] inSync, NodeAddress[]? members = null) =>
        ClusterConfig.Initial with
        {
            Epoch = epoch,
            Version = version,
            Primary = primary,
            InSync = [.. inSync.Distinct().Order()],
            Members = [.. (members ?? All).Select(m => new MemberInfo(m, m.Port)).OrderBy(m => m.Address)],
        };

    /// <summary>A message-store append entry, written by client 1 with the entry's index as request seq.</summary>
    public static LogEntry Entry(long index, long epoch, string? text = null) =>
        new(index, epoch, EntryKind.Command, 1, index, index, MessageStoreCommands.Append(text ?? $"m{index}"), 0);

    /// <summary>A log of entries with the given epochs, indexed from 1.</summary>
    public static ImmutableArray<LogEntry> Log(params long[] epochs) =>
        [.. epochs.Select((epoch, i) => Entry(i + 1, epoch))];

    public static byte[] Text(string text) => System.Text.Encoding.UTF8.GetBytes(text);
}

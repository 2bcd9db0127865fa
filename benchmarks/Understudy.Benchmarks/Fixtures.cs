using Understudy.Core.Replication;
using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>Shared inputs.</summary>
internal static class Fixtures
{
    /// <summary>A message-store append of a message of <paramref name="bytes"/> bytes.</summary>
    public static byte[] AppendCommand(int bytes) => MessageStoreCommands.Append(new string('x', bytes));

    /// <summary>
    /// A message-store server <paramref name="self"/> told by the monitor that <paramref name="members"/> (the first
    /// is the primary, all in sync, each with its port as priority) form epoch 1.
    /// </summary>
    public static ServerNode StartNode(NodeAddress self, CountingEnvironment env, params NodeAddress[] members)
    {
        var node = new ServerNode(self, 1, new ServerOptions(), new MessageStore(), env, TimeProvider.System);
        var config = new ClusterConfig
        {
            Epoch = 1,
            Version = 1,
            Primary = members[0],
            InSync = [.. members],
            Members = [.. members.Select(m => new MemberInfo(m, m.Port))],
        };
        node.Handle(new ConfigPush(config, TimeProvider.System.GetTimestamp(), 100_000_000));
        node.Flush();
        return node;
    }
}

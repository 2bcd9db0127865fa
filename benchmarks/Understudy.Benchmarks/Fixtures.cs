using Understudy.Core.StateMachines;

namespace Understudy.Benchmarks;

/// <summary>Shared inputs.</summary>
internal static class Fixtures
{
    /// <summary>A message-store append of a message of <paramref name="bytes"/> bytes.</summary>
    public static byte[] AppendCommand(int bytes) => MessageStoreCommands.Append(new string('x', bytes));
}

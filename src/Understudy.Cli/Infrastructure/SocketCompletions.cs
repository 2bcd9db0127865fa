namespace Understudy.Cli.Infrastructure;

/// <summary>
/// Runs socket completions inline on .NET's epoll threads in the processes that serve or make client requests
/// (<c>server</c>, <c>bench</c>). By default every socket completion is queued to the thread pool, so each request
/// read costs one more thread hand-off; with one connection per client (one request per connection per round trip)
/// those hand-offs, and the context switches they cause, were the largest cost left on a 2-core machine (docs/BENCHMARKS.md,
/// issue 11). Inline is safe there because every frame handler on those paths only decodes and posts to an event
/// loop: nothing blocks an epoll thread. The monitor keeps the default: it was not measured, its Raft coordinator's
/// library (DotNext) runs code of its own in socket continuations, and heartbeats must never wait behind that.
/// <para>
/// The runtime reads the variable once, when the first socket operation starts, so it is set at the top of Main. An
/// operator's own setting wins (0 turns it off); a value this class set is recognised by <see cref="Marker"/> and
/// dropped again in children that should not inherit it (a bench starts its monitor as a child).
/// </para>
/// </summary>
internal static class SocketCompletions
{
    /// <summary>The runtime's switch (System.Net.Sockets, Unix only).</summary>
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>Set beside <see cref="Variable"/> when this class, not the operator, chose it.</summary>
    public const string Marker = "UNDERSTUDY_INLINE_COMPLETIONS_CHOSEN";

    /// <summary>The verbs whose processes serve or send client requests at rate.</summary>
    private static readonly string[] Verbs = ["server", "bench"];

    /// <summary>Chooses for this process, from its verb (the first argument), before any socket is used.</summary>
    public static void Choose(string[] args)
    {
        var chosenHere = Environment.GetEnvironmentVariable(Marker) == "1";
        var operatorSet = !chosenHere && Environment.GetEnvironmentVariable(Variable) is { Length: > 0 };
        if (operatorSet)
        {
            return;
        }

        var inline = args.Length > 0 && Verbs.Contains(args[0], StringComparer.Ordinal);
        Environment.SetEnvironmentVariable(Variable, inline ? "1" : null);
        Environment.SetEnvironmentVariable(Marker, inline ? "1" : null);
    }
}

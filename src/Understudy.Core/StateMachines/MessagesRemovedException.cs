namespace Understudy.Core.StateMachines;

/// <summary>A read asked for messages that retention has removed; <see cref="FirstRetained"/> is where reading can resume.</summary>
public sealed class MessagesRemovedException : Exception
{
    public MessagesRemovedException(long firstRetained)
        : base($"messages before {firstRetained} were removed by retention (first retained: {firstRetained})") => FirstRetained = firstRetained;

    public MessagesRemovedException()
    {
    }

    public MessagesRemovedException(string message)
        : base(message)
    {
    }

    public MessagesRemovedException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public long FirstRetained { get; }
}

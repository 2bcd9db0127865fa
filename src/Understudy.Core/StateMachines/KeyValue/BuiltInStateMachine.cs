using Understudy.Core.StateMachines.KeyValue;

namespace Understudy.Core.StateMachines;

/// <summary>
/// The state machines the <c>understudy</c> executable can run (<c>--state-machine messages|kv</c>). The names are
/// what the flag takes, so they stay short. Every server of one cluster must run the same one.
/// </summary>
public enum BuiltInStateMachine
{
    /// <summary>The message store (<see cref="MessageStore"/>): the original project's service, and the default.</summary>
    Messages = 1,

    /// <summary>The key-value store (<see cref="KeyValueStore"/>).</summary>
    Kv = 2,
}

/// <summary>Names and factories of the <see cref="BuiltInStateMachine"/>s.</summary>
public static class BuiltInStateMachines
{
    /// <summary>The flag's spelling: <c>messages</c> or <c>kv</c>.</summary>
    public static string FlagName(this BuiltInStateMachine machine) => machine switch
    {
        BuiltInStateMachine.Kv => "kv",
        _ => "messages",
    };

    /// <summary>A factory of fresh state machines; <paramref name="retention"/> applies to the message store only.</summary>
    public static Func<IStateMachine> Factory(this BuiltInStateMachine machine, MessageRetention retention) => machine switch
    {
        BuiltInStateMachine.Kv => static () => new KeyValueStore(),
        _ => () => new MessageStore(retention),
    };

    /// <summary>
    /// The name a server gives its state machine when it meets another (servers running different ones refuse each
    /// other): the flag's spelling for a built-in one, its type's full name for any other.
    /// </summary>
    public static string NameOf(IStateMachine machine) => machine switch
    {
        MessageStore => BuiltInStateMachine.Messages.FlagName(),
        KeyValueStore => BuiltInStateMachine.Kv.FlagName(),
        _ => machine.GetType().FullName ?? machine.GetType().Name,
    };
}

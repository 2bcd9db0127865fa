using System.Buffers;
using System.Buffers.Binary;
using Understudy.Core.StateMachines;

namespace Understudy.Server.Tests;

/// <summary>
/// A user's own state machine, as a reader of the README would write one: a counter. Commands: add a number (returns
/// the new total), throw (a broken Apply), and hold (waits on <see cref="ApplyGate"/>, a slow Apply). The query reads the
/// total. It takes a service from the container, as a user's state machine may.
/// </summary>
public sealed class Counter(ApplyGate gate) : IStateMachine
{
    private long _total;

    public static ReadOnlyMemory<byte> Add(long delta)
    {
        var command = new byte[9];
        command[0] = 1;
        BinaryPrimitives.WriteInt64LittleEndian(command.AsSpan(1), delta);
        return command;
    }

    public static ReadOnlyMemory<byte> Throw() => new byte[] { 2 };

    public static ReadOnlyMemory<byte> Hold() => new byte[] { 3 };

    public static ReadOnlyMemory<byte> Total() => new byte[] { 0 };

    public static long Decode(ReadOnlyMemory<byte> result) => BinaryPrimitives.ReadInt64LittleEndian(result.Span);

    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context)
    {
        switch (command[0])
        {
            case 1:
                _total += BinaryPrimitives.ReadInt64LittleEndian(command[1..]);
                break;
            case 2:
                throw new InvalidOperationException("a bug in the user's Apply");
            case 3:
                gate.Hold();
                break;
        }

        return Encode(_total);
    }

    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query) => Encode(_total);

    public string? Validate(ReadOnlySpan<byte> command) =>
        command.Length == 0 || command[0] is < 1 or > 3 || (command[0] == 1 && command.Length != 9) ? "not a counter command" : null;

    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        BinaryPrimitives.WriteInt64LittleEndian(writer.GetSpan(8), _total);
        writer.Advance(8);
    }

    public void Restore(ReadOnlySpan<byte> snapshot) => _total = BinaryPrimitives.ReadInt64LittleEndian(snapshot);

    private static byte[] Encode(long total)
    {
        var result = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(result, total);
        return result;
    }
}

/// <summary>Lets a test hold an Apply on the node's loop and know when one is being held.</summary>
public sealed class ApplyGate
{
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when an Apply is waiting at the gate.</summary>
    public Task Entered => _entered.Task;

    public void Open() => _open.TrySetResult();

    /// <summary>How long the last <see cref="Hold"/> held its Apply.</summary>
    public TimeSpan Held { get; private set; }

    /// <summary>Waits for <see cref="Open"/>, at most 10 s (so a failing test never hangs a server's loop for good).</summary>
    public void Hold()
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        _entered.TrySetResult();
        _open.Task.Wait(TimeSpan.FromSeconds(10));
        Held = System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }
}

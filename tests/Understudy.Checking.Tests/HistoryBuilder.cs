
namespace Understudy.Checking.Tests;

/// <summary>Writes hand-made histories tersely: each call is an invoke and (unless left open) a completion.</summary>
public sealed class HistoryBuilder
{
    public const int Limit = 100;

    public List<Operation> Operations { get; } = [];

    public HistoryBuilder Append(int process, string value, long invoked, long? completed, OpType outcome = OpType.Ok, long? seq = null, long epoch = 1, string server = "127.0.0.1:8090")
    {
        Operations.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Append, Time = invoked, Value = value });
        if (completed is { } t)
        {
            Operations.Add(new Operation
            {
                Process = process,
                Type = outcome,
                Function = OpFunction.Append,
                Time = t,
                Value = value,
                Seq = outcome == OpType.Ok ? seq : null,
                Epoch = outcome == OpType.Ok ? epoch : null,
                Server = outcome == OpType.Ok ? server : null,
                Error = outcome == OpType.Ok ? null : "refused",
            });
        }

        return this;
    }

    public HistoryBuilder Read(int process, long invoked, long completed, long from, params string[] values)
    {
        Operations.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Read, Time = invoked, ReadFrom = from, ReadLimit = Limit });
        Operations.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Read, Time = completed, ReadFrom = from, ReadValues = values });
        return this;
    }

    public HistoryBuilder Count(int process, long invoked, long completed, long count)
    {
        Operations.Add(new Operation { Process = process, Type = OpType.Invoke, Function = OpFunction.Count, Time = invoked });
        Operations.Add(new Operation { Process = process, Type = OpType.Ok, Function = OpFunction.Count, Time = completed, Count = count });
        return this;
    }

    public HistoryBuilder Raw(Operation op)
    {
        Operations.Add(op);
        return this;
    }

    public CheckResult Check(params string[] finalLog) => HistoryChecker.Check(Operations, finalLog);
}

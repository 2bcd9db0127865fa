using System.Text.Json;
using System.Text.Json.Serialization;

namespace Understudy.Checking;

/// <summary>
/// What every recorded history shares: operations added from many threads, read back as a copy in the order
/// recorded, and saved or loaded as JSON lines (one object per line, nulls left out), as Jepsen keeps its histories.
/// </summary>
public abstract class RecordedHistory<TOperation>
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly List<TOperation> _operations = [];
    private readonly Lock _lock = new();

    protected RecordedHistory()
    {
    }

    protected RecordedHistory(IEnumerable<TOperation> operations) => _operations.AddRange(operations);

    /// <summary>A copy of the operations so far, in the order recorded.</summary>
    public IReadOnlyList<TOperation> Operations
    {
        get
        {
            lock (_lock)
            {
                return [.. _operations];
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _operations.Count;
            }
        }
    }

    public void Add(TOperation operation)
    {
        lock (_lock)
        {
            _operations.Add(operation);
        }
    }

    /// <summary>One JSON object per line.</summary>
    public void WriteJsonLines(TextWriter writer)
    {
        foreach (var op in Operations)
        {
            writer.WriteLine(JsonSerializer.Serialize(op, JsonOptions));
        }
    }

    public string ToJsonLines()
    {
        using var writer = new StringWriter();
        WriteJsonLines(writer);
        return writer.ToString();
    }

    /// <summary>Adds every line of <paramref name="reader"/> to <paramref name="history"/>; <paramref name="what"/> names a line in errors.</summary>
    protected static THistory ReadJsonLinesInto<THistory>(THistory history, TextReader reader, string what)
        where THistory : RecordedHistory<TOperation>
    {
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0)
            {
                history.Add(JsonSerializer.Deserialize<TOperation>(line, JsonOptions) ?? throw new FormatException($"history line is not {what}: {line}"));
            }
        }

        return history;
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Understudy.Checking.Linearizability;

/// <summary>
/// A recorded key-value history, one <see cref="KvOperation"/> per call (its invoke and its completion in one
/// record); safe to add to from several threads. Record a call when it ends: its outcome is known then, or it
/// is <see cref="KvOutcome.Unknown"/> when the client gave up on it.
/// </summary>
public sealed class KvHistory
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly List<KvOperation> _operations = [];
    private readonly Lock _lock = new();

    public KvHistory()
    {
    }

    public KvHistory(IEnumerable<KvOperation> operations) => _operations.AddRange(operations);

    /// <summary>A copy of the calls so far, in the order recorded.</summary>
    public IReadOnlyList<KvOperation> Operations
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

    public void Add(KvOperation operation)
    {
        lock (_lock)
        {
            _operations.Add(operation);
        }
    }

    /// <summary>Judges the calls so far; see <see cref="LinearizabilityChecker"/>.</summary>
    public LinearizabilityResult Check(LinearizabilityOptions? options = null, CancellationToken cancellationToken = default) =>
        LinearizabilityChecker.Check(Operations, options, cancellationToken);

    /// <summary>One JSON object per line, enums by name, nulls left out.</summary>
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

    public static KvHistory ReadJsonLines(TextReader reader)
    {
        var history = new KvHistory();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0)
            {
                history.Add(JsonSerializer.Deserialize<KvOperation>(line, JsonOptions) ?? throw new FormatException($"history line is not a key-value call: {line}"));
            }
        }

        return history;
    }
}

using System.Buffers;
using System.Globalization;
using System.Text;
using Understudy.Core.StateMachines;

namespace LedgerSample;

/// <summary>
/// Accounts and transfers between them. Commands and answers are text, one line:
/// <c>open ACCOUNT AMOUNT</c> (the only way money enters), <c>transfer ID FROM TO AMOUNT</c> (all or nothing);
/// queries <c>balances</c> (one "ACCOUNT AMOUNT" line each) and <c>applied</c> (one "ID TIMES" line per transfer applied).
/// Deterministic, as Understudy asks: no clock, no randomness, sorted collections, and Apply never throws.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1812", Justification = "Made by the container: AddUnderstudyServer<Ledger> in Program.cs.")]
internal sealed class Ledger : IStateMachine
{
    private readonly SortedDictionary<string, long> _balances = new(StringComparer.Ordinal);
    private readonly SortedDictionary<string, int> _applied = new(StringComparer.Ordinal);

    public ReadOnlyMemory<byte> Apply(ReadOnlySpan<byte> command, in ApplyContext context)
    {
        var words = Encoding.UTF8.GetString(command).Split(' ');
        switch (words)
        {
            case ["open", var account, var text] when long.TryParse(text, CultureInfo.InvariantCulture, out var amount):
                return Answer(_balances.TryAdd(account, amount) ? "ok" : "exists");
            case ["transfer", var id, var from, var to, var text] when long.TryParse(text, CultureInfo.InvariantCulture, out var amount):
                if (!_balances.TryGetValue(from, out var available) || !_balances.ContainsKey(to))
                {
                    return Answer("no-such-account");
                }

                if (available < amount)
                {
                    return Answer("insufficient");
                }

                _balances[from] -= amount;
                _balances[to] += amount;
                _applied[id] = _applied.GetValueOrDefault(id) + 1;
                return Answer("ok");
            default:
                return Answer("bad-command"); // Validate keeps these out of the log; never throw here.
        }
    }

    public ReadOnlyMemory<byte> Query(ReadOnlySpan<byte> query) => Encoding.UTF8.GetString(query) switch
    {
        "balances" => Answer(string.Join('\n', _balances.Select(b => $"{b.Key} {b.Value.ToString(CultureInfo.InvariantCulture)}"))),
        "applied" => Answer(string.Join('\n', _applied.Select(a => $"{a.Key} {a.Value.ToString(CultureInfo.InvariantCulture)}"))),
        _ => Answer("bad-query"),
    };

    public string? Validate(ReadOnlySpan<byte> command)
    {
        var words = Encoding.UTF8.GetString(command).Split(' ');
        return words switch
        {
            ["open", _, var amount] when IsAmount(amount, allowZero: true) => null,
            ["transfer", _, var from, var to, var amount] when from != to && IsAmount(amount, allowZero: false) => null,
            _ => "expected 'open ACCOUNT AMOUNT' or 'transfer ID FROM TO AMOUNT' (a positive amount, two different accounts)",
        };
    }

    // The snapshot is the two tables as text, in key order: the same state always gives the same bytes.
    public void WriteSnapshot(IBufferWriter<byte> writer)
    {
        var text = new StringBuilder();
        foreach (var (account, balance) in _balances)
        {
            text.Append(CultureInfo.InvariantCulture, $"b {account} {balance}\n");
        }

        foreach (var (id, times) in _applied)
        {
            text.Append(CultureInfo.InvariantCulture, $"t {id} {times}\n");
        }

        writer.Write(Encoding.UTF8.GetBytes(text.ToString()));
    }

    public void Restore(ReadOnlySpan<byte> snapshot)
    {
        _balances.Clear();
        _applied.Clear();
        foreach (var line in Encoding.UTF8.GetString(snapshot).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            if (parts[0] == "b")
            {
                _balances[parts[1]] = long.Parse(parts[2], CultureInfo.InvariantCulture);
            }
            else
            {
                _applied[parts[1]] = int.Parse(parts[2], CultureInfo.InvariantCulture);
            }
        }
    }

    private static bool IsAmount(string text, bool allowZero) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var amount) && (amount > 0 || (allowZero && amount == 0));

    private static ReadOnlyMemory<byte> Answer(string text) => Encoding.UTF8.GetBytes(text);
}

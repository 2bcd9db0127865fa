namespace Understudy.Orchestration.Bench;

/// <summary>
/// What one writer was told about each of its writes (numbered 0, 1, 2...), and how often the final log holds
/// each: two bytes per write, so judging 20 M writes takes about 40 MB instead of a history of every call.
/// Only its writer records (one write at a time); the judge reads after every writer has finished.
/// </summary>
public sealed class SoakLedger
{
    public const byte Acked = 1;
    public const byte FailedState = 2;
    public const byte UnknownState = 3;

    private byte[] _told = new byte[1024];
    private byte[] _seen = new byte[1024];
    private long _count;

    public long Acknowledged { get; private set; }

    public long Failed { get; private set; }

    public long Unknown { get; private set; }

    public int Lost { get; private set; }

    public int Duplicated { get; private set; }

    public void Record(long n, byte told)
    {
        if (n >= _told.Length)
        {
            var size = (int)Math.Min(Array.MaxLength, Math.Max(n + 1, (long)_told.Length * 2));
            Array.Resize(ref _told, size);
            Array.Resize(ref _seen, size);
        }

        _told[n] = told;
        _count = Math.Max(_count, n + 1);
        switch (told)
        {
            case Acked: Acknowledged++; break;
            case FailedState: Failed++; break;
            default: Unknown++; break;
        }
    }

    /// <summary>Write <paramref name="n"/> is in the log once more; what is wrong with that, or null.</summary>
    public string? Found(long n)
    {
        if (n >= _count || _told[n] == 0)
        {
            return "is in the log but was never sent";
        }

        if (_seen[n] < byte.MaxValue)
        {
            _seen[n]++;
        }

        if (_seen[n] == 2)
        {
            Duplicated++;
            return "is in the log twice";
        }

        return _told[n] == FailedState && _seen[n] == 1 ? "is in the log although the cluster said it failed" : null;
    }

    /// <summary>Acknowledged writes the log does not hold (counted into <see cref="Lost"/>).</summary>
    public IEnumerable<long> Missing()
    {
        var missing = new List<long>();
        for (long n = 0; n < _count; n++)
        {
            if (_told[n] == Acked && _seen[n] == 0)
            {
                missing.Add(n);
            }
        }

        Lost = missing.Count;
        return missing;
    }
}

namespace Understudy.Core.Replication;

/// <summary>
/// Paces what the primary sends to backups outside the in-sync set (a restarted, wiped or new server copying its
/// backlog) to <see cref="ServerOptions.CatchUpMaxBytesPerSecond"/>, shared by all of them: a token bucket filled at
/// that rate and holding at most 10 ms of it. Client writes wait only for the in-sync backups, so this stream can
/// wait; unpaced, it took the primary's loop, the catching-up backup's CPU and the disk from the clients (issue 9: they
/// kept 18 % of their throughput during a wiped backup's catch-up). A frame is sent while the bucket is not empty and
/// may take it below zero, so the bytes sent in any interval T are at most rate × T, plus the bucket, plus one frame.
/// </summary>
internal sealed class CatchUpPacer
{
    private readonly long _bytesPerSecond;
    private readonly long _frequency;
    private readonly long _burst;

    // Bytes the bucket holds, scaled by the timestamp frequency so that refilling never rounds a short interval to 0.
    private Int128 _scaledTokens;
    private long _filledAt;

    /// <param name="bytesPerSecond">The rate; 0 paces nothing.</param>
    /// <param name="frequency">Timestamp ticks per second (<see cref="TimeProvider.TimestampFrequency"/>).</param>
    /// <param name="now">The timestamp the bucket starts full at.</param>
    public CatchUpPacer(long bytesPerSecond, long frequency, long now)
    {
        _bytesPerSecond = bytesPerSecond;
        _frequency = frequency;

        // Short bursts, yet long enough that a loop turning every few milliseconds under load wastes none of the rate:
        // with frames of 60 KiB a bucket of one frame (1.1 ms at 52 MiB/s) overflowed between turns and a wiped
        // backup's catch-up fell below the rate (docs/BENCHMARKS.md, round 29).
        _burst = Math.Max(1, bytesPerSecond / 100);
        _scaledTokens = (Int128)_burst * _frequency;
        _filledAt = now;
    }

    /// <summary>False when nothing is paced (the rate is 0).</summary>
    public bool Enabled => _bytesPerSecond > 0;

    /// <summary>True when a frame may be sent now (the bucket is not empty, after refilling it up to now).</summary>
    public bool MaySend(long now)
    {
        if (!Enabled)
        {
            return true;
        }

        if (now > _filledAt)
        {
            var full = (Int128)_burst * _frequency;
            _scaledTokens += (Int128)(now - _filledAt) * _bytesPerSecond;
            if (_scaledTokens > full)
            {
                _scaledTokens = full;
            }

            _filledAt = now;
        }

        return _scaledTokens > 0;
    }

    /// <summary>Takes a sent frame's bytes from the bucket (it may go below zero: the next frame waits the longer).</summary>
    public void Spend(long bytes)
    {
        if (Enabled)
        {
            _scaledTokens -= (Int128)bytes * _frequency;
        }
    }
}

// Appending and syncing on the caller's thread, when the policy lets a sync report come straight after the write.
using Understudy.Protocol;

namespace Understudy.Storage;

public sealed partial class DurableLog
{
    /// <summary>
    /// <see cref="Append"/> then <see cref="RequestSync"/>(<paramref name="throughIndex"/>, <paramref name="generation"/>),
    /// done at once on the caller's thread when that changes nothing but who does it: with <see cref="FsyncPolicy.Never"/>
    /// (a sync is answered once the write reaches the operating system), when no work is queued ahead and the writer is
    /// between batches. Then the entries are written before it returns, it returns true with the index the writer's
    /// <see cref="DurableLogOptions.Synced"/> report would have given, and no such report follows. Otherwise it queues
    /// both, returns false, and the report comes from the writer as usual.
    /// </summary>
    /// <remarks>
    /// Orders with everything else as the queue does: nothing queued is ever overtaken (the count of queued work is
    /// read under the lock every enqueue takes), and the writer takes and does its work under a lock this holds while
    /// it writes. It saves two thread hand-offs per sync (to the writer and back to the caller's loop), which with
    /// many small replication frames was a good part of a backup's CPU per frame (docs/BENCHMARKS.md, round 23).
    /// A disk error fails the log as the writer's would (<see cref="DurableLogOptions.Faulted"/>, and every later call
    /// throws) and is thrown here too.
    /// </remarks>
    public bool AppendAndSync(ReadOnlySpan<LogEntry> entries, long throughIndex, long generation, out long syncedThrough)
    {
        syncedThrough = 0;
        StorageException? fault = null;
        lock (_enqueueLock)
        {
            ThrowIfStopped();
            if (_options.FsyncPolicy != FsyncPolicy.Never || Volatile.Read(ref _queued) != 0 || !_writeLock.TryEnter())
            {
                Append(entries);
                RequestSync(throughIndex, generation);
                return false;
            }

            try
            {
                var expected = CheckContinues(entries);
                try
                {
                    foreach (ref readonly var entry in entries)
                    {
                        AppendOne(entry);
                    }

                    WritePending();
                }
                catch (Exception e)
                {
                    // As the writer task's own failure: described once, then the log stops.
                    fault = DiskErrors.Describe(e, "writing the log", _current is null ? _directory : _segments[^1].Path);
                }

                _enqueuedLastIndex = expected - 1;
                syncedThrough = Math.Min(throughIndex, _writtenIndex);
            }
            finally
            {
                _writeLock.Exit();
            }
        }

        if (fault is not null)
        {
            Fail(fault);
            throw fault;
        }

        return true;
    }
}

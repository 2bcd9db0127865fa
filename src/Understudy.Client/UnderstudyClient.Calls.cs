using Understudy.Core.Client;

namespace Understudy.Client;

// A call's waiter, its cancellation and the bound on how long it waits.
public sealed partial class UnderstudyClient
{
    /// <summary>How often, while calls wait, the backstop looks for one past its deadline plus <see cref="DeadlineSlack"/>.</summary>
    private static readonly TimeSpan BackstopPeriod = TimeSpan.FromMilliseconds(250);

    // Under the gate: whether the backstop's timer is running (it stops itself once no call waits, so an idle client
    // wakes no thread).
    private bool _backstopArmed;

    // With CallResumption.Reader: the calls a reader ended while it held the gate, which that reader completes once it
    // has left it (the caller's code never runs under the gate). Set by the reader for as long as it holds the gate.
    private List<(TaskCompletionSource<ClientResult> Done, ClientResult Result)>? _readerFinished;

    /// <summary>A call's waiter: its continuation runs on the thread pool, or (<see cref="CallResumption.Reader"/>) wherever it is completed.</summary>
    private TaskCompletionSource<ClientResult> NewCall() =>
        new(_options.ResumeOn == CallResumption.Reader ? TaskCreationOptions.None : TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Under the gate: ends a call with its result, never running the caller's code here. With the thread pool the task
    /// hands its continuation over itself; with <see cref="CallResumption.Reader"/> a reader completes it after leaving
    /// the gate, and any other thread (a tick's timeout, a retry giving up) hands it to the thread pool.
    /// </summary>
    private void Finish(TaskCompletionSource<ClientResult> done, in ClientResult result)
    {
        if (_options.ResumeOn == CallResumption.ThreadPool)
        {
            done.TrySetResult(result);
        }
        else if (_readerFinished is { } finished)
        {
            finished.Add((done, result));
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Done.TrySetResult(s.Result), (Done: done, Result: result), preferLocal: false);
        }
    }

    /// <summary>Under the gate: fails a call, never running the caller's code here (as <see cref="Finish"/>).</summary>
    private void Fail(TaskCompletionSource<ClientResult> done, Exception error)
    {
        if (_options.ResumeOn == CallResumption.ThreadPool)
        {
            done.TrySetException(error);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Done.TrySetException(s.Error), (Done: done, Error: error), preferLocal: false);
        }
    }

    /// <summary>
    /// A waiting call: its caller's task, and when the backstop gives up on it (a timestamp of
    /// <see cref="TimeProvider.System"/>) with the bound it then reports.
    /// </summary>
    private readonly record struct Call(TaskCompletionSource<ClientResult> Done, long GiveUpAt, TimeSpan Bound);

    /// <summary>
    /// Under the gate: records a call that waits for its answer. The session times every call out itself, on the loop's
    /// ticks; the backstop is for when it cannot (the loop is stuck or gone): no call outlives its deadline plus
    /// <see cref="DeadlineSlack"/> (and at most one <see cref="BackstopPeriod"/> more), whatever the loop, the monitor and
    /// the servers do. One timer per client checks every waiting call, instead of a timer per call (a per-call
    /// <c>WaitAsync(timeout)</c> made and removed one for every request).
    /// </summary>
    private void AwaitCall(long seq, TaskCompletionSource<ClientResult> done, TimeSpan deadline)
    {
        var bound = deadline + DeadlineSlack;
        _calls[seq] = new Call(done, TimeProvider.System.GetTimestamp() + (long)(bound.TotalSeconds * TimeProvider.System.TimestampFrequency), bound);
        if (!_backstopArmed)
        {
            _backstopArmed = true;
            _backstop.Change(BackstopPeriod, BackstopPeriod);
        }
    }

    /// <summary>On the backstop's timer: fails every call past its bound as of unknown outcome (it may have been applied).</summary>
    private void FailOverdueCalls()
    {
        lock (_gate)
        {
            if (_calls.Count == 0 || _detached)
            {
                _backstopArmed = false;
                _backstop.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                return;
            }

            var now = TimeProvider.System.GetTimestamp();
            List<long>? overdue = null;
            foreach (var (seq, call) in _calls)
            {
                if (now >= call.GiveUpAt)
                {
                    (overdue ??= []).Add(seq);
                }
            }

            foreach (var seq in overdue ?? [])
            {
                _calls.Remove(seq, out var call);
                Fail(call.Done, new UnderstudyException($"no answer within {call.Bound.TotalSeconds:0.#} s", OutcomeKind.Unknown));
            }
        }
    }

    /// <summary>
    /// The caller's cancellation of one call, made only for a token that can be cancelled (a call without one allocates
    /// nothing for it). It runs through the loop, under the gate.
    /// </summary>
    private sealed class CallCancellation(UnderstudyClient client, long seq, Task done)
    {
        /// <summary>Set under the gate when the cancellation reached the session before the call finished.</summary>
        public bool Reached { get; private set; }

        public static CancellationTokenRegistration Register(CallCancellation cancellation, CancellationToken cancellationToken) =>
            cancellationToken.Register(static state => ((CallCancellation)state!).Post(), cancellation);

        private void Post() => client.Post(() =>
        {
            if (!done.IsCompleted)
            {
                Reached = true;
                client._session.Cancel(seq);
            }
        });
    }
}

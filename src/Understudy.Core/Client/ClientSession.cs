using Understudy.Protocol;

namespace Understudy.Core.Client;

/// <summary>
/// The client's retry logic: finds the primary through the monitor, follows pushed primary changes
/// and <c>NOT_PRIMARY</c> hints, and retries each request with the same (client id, seq) until it is
/// answered or its deadline passes. Servers deduplicate by that pair, so a retry after a failover
/// returns the first result. No I/O; not thread-safe (the adapter serialises calls).
/// </summary>
public sealed class ClientSession
{
    private readonly ClientOptions _options;
    private readonly IClientEnvironment _env;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private readonly SortedDictionary<long, Pending> _pending = [];
    private long _nextSeq = 1;

    // The first write of this session that may have reached a server (0: none yet). Until that write has finished,
    // requests say FirstIncomplete 1: servers take an unknown client with FirstIncomplete above 1 for one whose session
    // expired, so only a client that may have had a write applied before may send more.
    private long _firstSentWrite;
    private long _lastMonitorQueryAt = long.MinValue;

    public ClientSession(ulong clientId, ClientOptions options, IClientEnvironment environment, TimeProvider time, Random random)
    {
        options.Validate();
        ClientId = clientId;
        _options = options;
        _env = environment;
        _time = time;
        _random = random;
    }

    /// <summary>The session's id; a new one once the servers expired the previous session.</summary>
    public ulong ClientId { get; private set; }

    /// <summary>The primary this client currently sends to, or none.</summary>
    public NodeAddress Primary { get; private set; } = NodeAddress.None;

    /// <summary>The epoch of <see cref="Primary"/>.</summary>
    public long Epoch { get; private set; }

    public int PendingCount => _pending.Count;

    private long Now => _time.GetTimestamp();

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    /// <summary>Asks the monitor for the primary (call again whenever the monitor connection is new).</summary>
    public void Start() => QueryMonitor(Now);

    /// <summary>Starts a call; returns its sequence number. The result comes through <see cref="IClientEnvironment.Complete"/>.</summary>
    public long Submit(RequestKind kind, ReadOnlyMemory<byte> payload, TimeSpan? timeout = null) => Submit(kind, payload, timeout, NodeAddress.None);

    /// <summary>
    /// Starts a call whose first attempt goes to <paramref name="firstTarget"/> rather than the primary: a
    /// <see cref="RequestKind.StaleRead"/> to a backup. When that server refuses, or does not answer, the call goes
    /// on to the primary at once, as any other.
    /// </summary>
    public long Submit(RequestKind kind, ReadOnlyMemory<byte> payload, TimeSpan? timeout, NodeAddress firstTarget)
    {
        var now = Now;
        var seq = _nextSeq++;
        var p = new Pending(seq, kind, payload, now + Ticks(timeout ?? _options.RequestTimeout)) { FirstTarget = firstTarget };
        _pending[seq] = p;
        Attempt(p, now);
        return seq;
    }

    /// <summary>
    /// The caller gave up on a call. One never sent ends <see cref="OutcomeKind.Failed"/> and is never sent later; one
    /// already sent ends <see cref="OutcomeKind.Unknown"/> (it may still be applied). A call already finished is ignored.
    /// </summary>
    public void Cancel(long seq)
    {
        if (_pending.TryGetValue(seq, out var p))
        {
            Finish(p, p.Sent ? OutcomeKind.Unknown : OutcomeKind.Failed, default, Epoch, p.Target, p.Sent ? "cancelled after it was sent" : "cancelled before it was sent");
        }
    }

    /// <summary>A server answered.</summary>
    public void Handle(NodeAddress from, in ClientResponse response)
    {
        if (response.ClientId != ClientId || !_pending.TryGetValue(response.Seq, out var p))
        {
            return;
        }

        var now = Now;
        switch (response.Status)
        {
            case ResponseStatus.Ok:
                Finish(p, OutcomeKind.Ok, response.Payload, response.Epoch, from, string.Empty);
                return;
            case ResponseStatus.Rejected:
                if (p.Seq == _firstSentWrite)
                {
                    // Refused before it reached the log: it cannot have started a session on the servers.
                    _firstSentWrite = 0;
                }

                Finish(p, OutcomeKind.Failed, default, response.Epoch, from, response.PayloadText);
                return;
            case ResponseStatus.SessionExpired:
                Finish(p, OutcomeKind.Unknown, default, response.Epoch, from, $"session expired: the outcome of request {p.Seq} is unknown");
                StartNewSession(now);
                return;
        }

        // A refusal from a server this attempt was not sent to is stale: the request has moved on.
        if (from != p.Target)
        {
            return;
        }

        if (!p.FirstTarget.IsNone && from == p.FirstTarget)
        {
            // The backup could not serve the stale read within its lag: the primary answers it instead, now.
            p.FirstTarget = NodeAddress.None;
            p.LastError = response.PayloadText;
            Attempt(p, now);
            return;
        }

        if (response.Status == ResponseStatus.NotPrimary)
        {
            if (response.Epoch > Epoch && !response.Primary.IsNone && response.Primary != from)
            {
                SetPrimary(response.Primary, response.Epoch, $"hint from {from}");
                Attempt(p, now);
                return;
            }

            QueryMonitor(now);
            if (from == Primary && response.Epoch < Epoch && p.Attempts < 10)
            {
                // The monitor named this server for a newer epoch than it knows yet: its promotion is probably
                // on the way. Ask again shortly rather than back off; after a few tries, back off as usual.
                p.LastError = response.PayloadText;
                p.NextAttemptAt = now + Ticks(_options.InitialBackoff);
                return;
            }
        }

        p.LastError = response.PayloadText;
        Backoff(p, now);
    }

    /// <summary>The monitor says who the primary is (an answer or a pushed change).</summary>
    public void Handle(in PrimaryUpdate update)
    {
        if (update.Epoch < Epoch || update.Primary.IsNone)
        {
            return;
        }

        if (update.Epoch == Epoch && update.Primary == Primary)
        {
            return;
        }

        SetPrimary(update.Primary, update.Epoch, "monitor");

        // The switch: everything waiting goes to the new primary now, not after its timeout.
        var now = Now;
        foreach (var p in _pending.Values.ToList())
        {
            p.Backoff = 0;
            Attempt(p, now);
        }
    }

    /// <summary>The connection to a server dropped.</summary>
    public void OnServerConnectionLost(NodeAddress server)
    {
        var now = Now;
        if (server == Primary)
        {
            QueryMonitor(now);
        }

        foreach (var p in _pending.Values)
        {
            if (p.Target == server && p.NextAttemptAt == long.MaxValue)
            {
                p.LastError = $"connection to {server} lost";
                Backoff(p, now);
            }
        }
    }

    /// <summary>Periodic work: deadlines, attempt timeouts, scheduled retries.</summary>
    public void Tick()
    {
        var now = Now;
        if (Primary.IsNone && (_lastMonitorQueryAt == long.MinValue || now - _lastMonitorQueryAt >= Ticks(_options.MonitorRetryInterval)))
        {
            QueryMonitor(now);
        }

        // Most ticks find nothing due: only then is the list copied (finishing or retrying a call changes it).
        if (!AnyDue(now))
        {
            return;
        }

        foreach (var p in _pending.Values.ToList())
        {
            if (now >= p.Deadline)
            {
                var why = p.LastError is { Length: > 0 } last ? $"; last answer: {last}" : string.Empty;
                Finish(p, p.Sent ? OutcomeKind.Unknown : OutcomeKind.Failed, default, Epoch, p.Target, $"no answer within the deadline after {p.Attempts} attempt(s){why}");
                continue;
            }

            if (p.NextAttemptAt <= now)
            {
                Attempt(p, now);
            }
            else if (p.Sent && p.NextAttemptAt == long.MaxValue && now >= p.AttemptDeadline)
            {
                p.LastError = $"no answer from {p.Target} within {_options.AttemptTimeout.TotalMilliseconds:0} ms";
                QueryMonitor(now);
                Backoff(p, now);
            }
        }
    }

    /// <summary>Whether <see cref="Tick"/> has anything to do for some call at <paramref name="now"/> (the conditions it acts on).</summary>
    private bool AnyDue(long now)
    {
        foreach (var p in _pending.Values)
        {
            if (now >= p.Deadline || p.NextAttemptAt <= now || (p.Sent && p.NextAttemptAt == long.MaxValue && now >= p.AttemptDeadline))
            {
                return true;
            }
        }

        return false;
    }

    private void Attempt(Pending p, long now)
    {
        // Only the first attempt goes to a chosen server; every later one (after a refusal, a lost connection or
        // no answer) goes to the primary.
        var target = p.Attempts == 0 && !p.FirstTarget.IsNone ? p.FirstTarget : Primary;
        if (target != p.FirstTarget)
        {
            p.FirstTarget = NodeAddress.None;
        }

        if (target.IsNone)
        {
            if (_options.NoPrimary == NoPrimaryPolicy.FailFast)
            {
                Finish(p, p.Sent ? OutcomeKind.Unknown : OutcomeKind.Failed, default, Epoch, NodeAddress.None, "no primary known (fail-fast policy)");
                return;
            }

            // Queued: the monitor's answer or push sends it.
            p.NextAttemptAt = now + Ticks(_options.MonitorRetryInterval);
            QueryMonitor(now);
            return;
        }

        p.Target = target;
        if (p.Kind == RequestKind.Write && _firstSentWrite == 0)
        {
            _firstSentWrite = p.Seq;
        }

        p.Sent = true;
        p.Attempts++;
        p.NextAttemptAt = long.MaxValue;
        p.AttemptDeadline = now + Ticks(_options.AttemptTimeout);
        _env.SendToServer(target, new ClientRequest(ClientId, p.Seq, WireFirstIncomplete(), p.Kind, p.Payload));
    }

    /// <summary>
    /// The servers dropped this client's session: every write already sent may or may not have been applied under
    /// it, so each ends as unknown (retrying it under a new id could apply it twice). Writes not yet sent and reads
    /// go on under a fresh id, a new session.
    /// </summary>
    private void StartNewSession(long now)
    {
        foreach (var p in _pending.Values.ToList())
        {
            if (p.Kind == RequestKind.Write && p.Sent)
            {
                Finish(p, OutcomeKind.Unknown, default, Epoch, p.Target, $"session expired: the outcome of request {p.Seq} is unknown");
            }
        }

        var previous = ClientId;
        ClientId = NewClientId(previous);
        _firstSentWrite = 0;
        _env.Report(new ClientEvent(ClientEventKind.SessionRenewed, Epoch, Primary, $"session {previous:x} expired on the servers; new session {ClientId:x}"));
        foreach (var p in _pending.Values.ToList())
        {
            p.Backoff = 0;
            Attempt(p, now);
        }
    }

    private ulong NewClientId(ulong previous)
    {
        while (true)
        {
            var id = (ulong)_random.NextInt64() | 1;
            if (id != previous)
            {
                return id;
            }
        }
    }

    /// <summary>What requests carry as FirstIncomplete: 1 while this session's first sent write is unfinished (see <see cref="_firstSentWrite"/>).</summary>
    private long WireFirstIncomplete()
    {
        var first = FirstIncomplete();
        return _firstSentWrite == 0 || first <= _firstSentWrite ? 1 : first;
    }

    private void Backoff(Pending p, long now)
    {
        var initial = Ticks(_options.InitialBackoff);
        var max = Ticks(_options.MaxBackoff);
        p.Backoff = p.Backoff == 0 ? initial : Math.Min(max, p.Backoff * 2);

        // Full jitter: clients retrying after the same failover spread out instead of arriving together.
        var delay = (long)(_random.NextDouble() * p.Backoff);
        p.NextAttemptAt = now + Math.Max(1, delay);
        _env.Report(new ClientEvent(ClientEventKind.Retrying, Epoch, Primary, p.LastError ?? string.Empty));
    }

    private void Finish(Pending p, OutcomeKind outcome, ReadOnlyMemory<byte> payload, long epoch, NodeAddress server, string error)
    {
        _pending.Remove(p.Seq);
        _env.Complete(new ClientResult(p.Seq, p.Kind, outcome, payload, epoch, server, error, p.Attempts));
    }

    private void SetPrimary(NodeAddress primary, long epoch, string source)
    {
        Primary = primary;
        Epoch = epoch;
        _env.Report(new ClientEvent(ClientEventKind.PrimaryChanged, epoch, primary, source));
    }

    private void QueryMonitor(long now)
    {
        _lastMonitorQueryAt = now;
        _env.QueryMonitor();
    }

    private long FirstIncomplete()
    {
        foreach (var p in _pending.Values)
        {
            if (p.Kind == RequestKind.Write)
            {
                return p.Seq;
            }
        }

        return _nextSeq;
    }

    private sealed class Pending(long seq, RequestKind kind, ReadOnlyMemory<byte> payload, long deadline)
    {
        public long Seq { get; } = seq;

        public RequestKind Kind { get; } = kind;

        public ReadOnlyMemory<byte> Payload { get; } = payload;

        public long Deadline { get; } = deadline;

        public long NextAttemptAt { get; set; } = long.MinValue;

        public long AttemptDeadline { get; set; }

        public long Backoff { get; set; }

        public int Attempts { get; set; }

        public bool Sent { get; set; }

        public NodeAddress Target { get; set; } = NodeAddress.None;

        /// <summary>Where the first attempt goes instead of the primary (a backup, for a stale read); none after it.</summary>
        public NodeAddress FirstTarget { get; set; } = NodeAddress.None;

        public string? LastError { get; set; }
    }
}

using Understudy.Core.StateMachines;
using Understudy.Protocol;

namespace Understudy.Core.Replication;

/// <summary>
/// A primary in one epoch: replicates to its backups (<see cref="FollowerProgress"/>), advances the commit
/// index by the <see cref="ICommitRule"/>, answers clients once their writes commit, asks the monitor to
/// change the in-sync set, serves only under the monitor's lease, and hands over when asked.
/// Created fresh at each promotion and dropped whole when the server steps down or is promoted again.
/// </summary>
internal sealed partial class PrimaryRole : EpochRole
{
    private readonly ServerNode _node;
    private readonly Dictionary<NodeAddress, FollowerProgress> _followers = [];
    private readonly Dictionary<long, Waiter> _waiters = [];
    private readonly Dictionary<long, List<Waiter>> _extraWaiters = [];
    private readonly Dictionary<(ulong ClientId, long Seq), long> _inflightWrites = [];
    private readonly Dictionary<NodeAddress, long> _pendingAdds = [];

    // Backups reported as needing a snapshot (entries they need are compacted away), so each is reported once.
    private readonly HashSet<NodeAddress> _needsSnapshot = [];

    // What backups outside the in-sync set are sent, all of them together (ServerOptions.CatchUpMaxBytesPerSecond).
    private readonly CatchUpPacer _catchUpPacer;

    private long _leaseExpiresAt = long.MinValue;
    private bool _leaseHeld;
    private PendingChange? _pendingChange;
    private Handover? _handover;

    /// <summary>
    /// Takes over the log as it stands; the node appends the epoch's first entry at <see cref="EpochStartIndex"/> next.
    /// </summary>
    public PrimaryRole(ServerNode node, long now)
    {
        _node = node;
        _catchUpPacer = new CatchUpPacer(node.Options.CatchUpMaxBytesPerSecond, node.TimestampFrequency, now);
        EnsureFollowers(now);

        // Writes from earlier epochs still uncommitted here may be retried by their clients: find them by id.
        var log = node.Log;
        for (var i = node.CommitIndex + 1; i <= log.LastIndex; i++)
        {
            var e = log[i];
            if (e.Kind == EntryKind.Command)
            {
                _inflightWrites[(e.ClientId, e.RequestSeq)] = i;
            }
        }

        EpochStartIndex = log.LastIndex + 1;
    }

    public override ServerRole Kind => ServerRole.Primary;

    /// <summary>The epoch's first entry: once it commits, everything before it has too, and reads may be served.</summary>
    public long EpochStartIndex { get; }

    public IReadOnlyCollection<FollowerProgress> Followers => _followers.Values;

    /// <summary>Backups asked into the in-sync set whose answer is not yet known.</summary>
    public IReadOnlyCollection<NodeAddress> PendingAddMembers => _pendingAdds.Keys;

    /// <summary>True while writes and reads may be taken: no handover, a running lease, the epoch start committed.</summary>
    public bool IsServing => _handover is null && LeaseValid(_node.Now) && _node.CommitIndex >= EpochStartIndex;

    private IServerEnvironment Env => _node.Env;

    private ReplicatedLog Log => _node.Log;

    private ServerOptions Options => _node.Options;

    private ClusterConfig Config => _node.Config;

    private NodeAddress Self => _node.Self;

    private long Epoch => _node.Epoch;

    public FollowerProgress? Follower(NodeAddress address) => _followers.GetValueOrDefault(address);

    public bool LeaseValid(long now) => now < _leaseExpiresAt;

    /// <summary>Tells reads off the loop what the loop would check: lease, epoch start committed, switchover (<see cref="OffLoopReads"/>).</summary>
    public void PublishReads(OffLoopReads reads) =>
        reads.Publish(Self, Epoch, primary: true, _handover is not null, _leaseExpiresAt, _node.CommitIndex >= EpochStartIndex);

    // ------------------------------------------------------------------ inputs, as the node passes them on

    public void Tick(long now)
    {
        if (_leaseHeld && !LeaseValid(now))
        {
            _leaseHeld = false;
            Env.Report(new ServerEvent(ServerEventKind.LeaseLapsed, Epoch, NodeAddress.None, 0, "no lease renewal from the monitor: not serving"));
        }

        EnsureFollowers(now);
        var resend = _node.Ticks(Options.ResendTimeout);
        var keepAlive = _node.Ticks(Options.HeartbeatInterval);
        foreach (var f in _followers.Values)
        {
            if (f.MatchIndex >= Log.LastIndex)
            {
                f.LastProgressAt = now;
            }

            // Frames outstanding and no answer for a while: presume them lost, probe and resend.
            if (f.Inflight > 0 && f.WaitingSince != long.MinValue && now - f.WaitingSince > resend)
            {
                f.ResetToProbe();
            }

            // Snapshot chunks unanswered for as long: presume them lost, ask the backup where it is.
            if (f.Transfer is { WaitingSince: var since } transfer && since != long.MinValue && now - since > resend)
            {
                transfer.Probe();
            }

            SendEntries(f, now, keepAlive: f.LastSentAt == long.MinValue || now - f.LastSentAt >= keepAlive || f.LastCommitSent < _node.CommitIndex);
        }

        DecideInSyncChange(now);
        CheckHandover(now);
        AdvanceCommit();
    }

    /// <summary>A configuration the node accepted (it may be the one that promoted this server).</summary>
    public void OnConfig(ClusterConfig config)
    {
        if (_pendingAdds.Count > 0)
        {
            foreach (var (member, expected) in _pendingAdds.ToArray())
            {
                if (config.Version > expected)
                {
                    _pendingAdds.Remove(member);
                }
            }
        }

        if (_pendingChange is { } pending && config.Version > pending.ExpectedVersion)
        {
            _pendingChange = null;
        }

        EnsureFollowers(_node.Now);
        AdvanceCommit();
    }

    /// <summary>A lease from the monitor, dated on this server's clock at <paramref name="baseTimestamp"/>.</summary>
    public void GrantLease(ClusterConfig config, long baseTimestamp, int leaseMs)
    {
        if (leaseMs <= 0 || baseTimestamp == 0 || config.Epoch != Epoch || config.Primary != Self)
        {
            return;
        }

        // Having promised the monitor never to serve again in this epoch, take no lease.
        if (_handover is { ReadySent: true })
        {
            return;
        }

        var expires = baseTimestamp + _node.Ticks(TimeSpan.FromMilliseconds(leaseMs * Options.LeaseSafetyFactor));
        if (expires > _leaseExpiresAt)
        {
            _leaseExpiresAt = expires;
        }

        if (!_leaseHeld && LeaseValid(_node.Now))
        {
            _leaseHeld = true;
            Env.Report(new ServerEvent(ServerEventKind.LeaseRenewed, Epoch, NodeAddress.None, 0, string.Empty));
        }
    }

    public void OnInSyncChangeResult(in InSyncChangeResult result)
    {
        if (_pendingChange is { } pending && pending.RequestId == result.RequestId)
        {
            _pendingChange = null;
            Env.Report(new ServerEvent(ServerEventKind.InSyncChangeAnswered, Epoch, pending.Member, 0, $"{pending.Op} {(result.Accepted ? "accepted" : "refused: " + result.Reason)}"));
        }
    }

    /// <summary>
    /// A different monitor process is active now (a new term, or a restart). If this primary has promised to step
    /// down, say so again: the new monitor knows nothing of the switchover and, unless it sees the promotion stored,
    /// releases this primary (a <see cref="StepDown"/> with no target) rather than leave it idle for good.
    /// </summary>
    public void OnNewActiveMonitor()
    {
        if (_handover is { ReadySent: true } handover)
        {
            Env.SendToMonitor(new StepDownResult(Epoch, Self, handover.Target, true, Log.LastIndex, "ready (said again to a new active monitor)"));
        }
    }

    /// <summary>The monitor's hand-over request for this epoch (the node has checked the epoch).</summary>
    public void OnStepDown(in StepDown request)
    {
        if (request.Target.IsNone)
        {
            if (_handover is not null)
            {
                _handover = null;
                Env.Report(new ServerEvent(ServerEventKind.HandoverAbandoned, Epoch, NodeAddress.None, 0, "called off by the monitor"));
            }

            return;
        }

        if (request.Target == Self || !Config.IsMember(request.Target))
        {
            Env.SendToMonitor(new StepDownResult(request.Epoch, Self, request.Target, false, Log.LastIndex, $"{request.Target} is not a backup of this cluster"));
            return;
        }

        if (_handover is null)
        {
            // At once, not at the end of the burst: the target may be promoted without waiting out this lease.
            _node.Reads.Withdraw();
            _handover = new Handover(request.Target, _node.Now + _node.Ticks(Options.SwitchoverTimeout));
            Env.Report(new ServerEvent(ServerEventKind.HandoverStarted, Epoch, request.Target, Log.LastIndex, "writes paused until the target holds the whole log"));
        }

        CheckHandover(_node.Now);
    }

    /// <summary>A client's read or write; answered now, or (a write) once it commits.</summary>
    public void OnClientRequest(ClientRef client, in ClientRequest request)
    {
        var now = _node.Now;
        if (request.Kind is RequestKind.Read or RequestKind.StaleRead)
        {
            // A stale read that reached the primary (no backup could serve it) is answered as a linearizable one.
            var query = request.Payload;
            if (request.Kind == RequestKind.StaleRead && !StaleReadPayload.TryDecode(request.Payload, out _, out query))
            {
                _node.Answer(client, request, ResponseStatus.Rejected, ServerNode.Text("a stale read's payload must start with the lag allowed (8 bytes, not negative)"));
                return;
            }

            // Whether a read may be served is the read rule's alone (ReadRule.cs), lease and epoch included.
            ReadAnswer.TryAnswer(_node, client, request, query, new ReadView(ServerRole.Primary, LeaseValid(now), _node.CommitIndex >= EpochStartIndex, _handover is not null));
            return;
        }

        if (_handover is not null)
        {
            _node.Answer(client, request, ResponseStatus.Unavailable, ServerNode.Text("switchover in progress: retry shortly"));
            return;
        }

        if (!LeaseValid(now))
        {
            _node.Answer(client, request, ResponseStatus.Unavailable, ServerNode.Text("primary has no lease from the monitor: retry shortly"));
            return;
        }

        if (Config.InSync.Length < Options.MinInSync)
        {
            _node.Answer(client, request, ResponseStatus.Unavailable, ServerNode.Text($"only {Config.InSync.Length} server(s) in sync; min-in-sync is {Options.MinInSync}"));
            return;
        }

        switch (_node.State.LookupWrite(request.ClientId, request.Seq, out var previous))
        {
            case DedupLookup.Expired:
                _node.Answer(client, request, ResponseStatus.SessionExpired, ReplicatedState.SessionExpiredText(request.Seq));
                return;
            case DedupLookup.Applied:
                _node.Answer(client, request, ResponseStatus.Ok, previous);
                return;
            case DedupLookup.Forgotten:
                _node.Answer(client, request, ResponseStatus.Rejected, ServerNode.Text($"request {request.Seq} was answered before and its result is no longer kept"));
                return;
        }

        if (_inflightWrites.TryGetValue((request.ClientId, request.Seq), out var pendingIndex))
        {
            AddWaiter(pendingIndex, new Waiter(client, request.ClientId, request.Seq));
            return;
        }

        if (_node.State.Machine.Validate(request.Payload.Span) is { } problem)
        {
            _node.Answer(client, request, ResponseStatus.Rejected, ServerNode.Text(problem));
            return;
        }

        var entry = new LogEntry(Log.LastIndex + 1, Epoch, EntryKind.Command, request.ClientId, request.Seq, request.FirstIncomplete, request.Payload, _node.NextLogTimeMs());
        Log.Append(entry);
        Env.AppendLog(new ReadOnlySpan<LogEntry>(in entry));
        _inflightWrites[(request.ClientId, request.Seq)] = entry.Index;
        AddWaiter(entry.Index, new Waiter(client, request.ClientId, request.Seq));
    }

    // ------------------------------------------------------------------ commit

    /// <summary>Commits as far as the commit rule allows (never past the log's end).</summary>
    public void AdvanceCommit()
    {
        var commit = Math.Min(_node.ComputeCommitIndex(), Log.LastIndex);
        if (commit > _node.CommitIndex)
        {
            _node.CommitThrough(commit);
        }
    }

    /// <summary>
    /// A committed command was applied: it is no longer in flight, and whoever waits for it gets the result, or, when
    /// its session had expired by then (<paramref name="sessionExpired"/>, so it was not applied), the refusal.
    /// </summary>
    public void OnApplied(in LogEntry entry, ReadOnlyMemory<byte> result, bool sessionExpired)
    {
        _inflightWrites.Remove((entry.ClientId, entry.RequestSeq));
        if (_waiters.Remove(entry.Index, out var waiter))
        {
            Reply(waiter, result, sessionExpired);
            if (_extraWaiters.Remove(entry.Index, out var more))
            {
                foreach (var w in more)
                {
                    Reply(w, result, sessionExpired);
                }
            }
        }
    }

    private void Reply(in Waiter waiter, ReadOnlyMemory<byte> result, bool sessionExpired)
    {
        if (sessionExpired)
        {
            Env.Reply(waiter.Client, new ClientResponse(waiter.ClientId, waiter.Seq, ResponseStatus.SessionExpired, Epoch, Self, result));
            return;
        }

        ReplyOk(waiter, result);
    }

    /// <summary>Stepping down: every client still waiting is told to retry at the new primary.</summary>
    public void FailWaiters(NodeAddress newPrimary, long epoch)
    {
        var message = ServerNode.Text("this server stopped being primary before the write committed: retry at the new primary");
        foreach (var w in _waiters.Values.Concat(_extraWaiters.Values.SelectMany(l => l)))
        {
            Env.Reply(w.Client, new ClientResponse(w.ClientId, w.Seq, ResponseStatus.NotPrimary, epoch, newPrimary, message));
        }

        _waiters.Clear();
        _extraWaiters.Clear();
    }

    public override void CheckInvariants()
    {
        var last = Log.LastIndex;
        var commit = _node.CommitIndex;

        // A primary's log never shrinks, and it began its epoch by appending the EpochStart entry (checked while the
        // log still holds it: compaction under a snapshot may remove it in a long epoch).
        if (EpochStartIndex < 1 || EpochStartIndex > last || (EpochStartIndex >= Log.FirstIndex && (Log[EpochStartIndex].Kind != EntryKind.EpochStart || Log[EpochStartIndex].Epoch != Epoch)))
        {
            throw new InvariantViolationException("primary: its log holds its epoch's EpochStart entry", $"epoch start index {EpochStartIndex}, epoch {Epoch}, last index {last}");
        }

        // Having promised the monitor never to serve again in this epoch, it holds no lease.
        if (_handover is { ReadySent: true } && (_leaseHeld || _leaseExpiresAt != long.MinValue))
        {
            throw new InvariantViolationException("primary: no lease after handover-ready", $"lease held {_leaseHeld}, expires at {_leaseExpiresAt}");
        }

        if (_handover is { } handover && handover.Target == Self)
        {
            throw new InvariantViolationException("primary: never hands over to itself", $"target {handover.Target}");
        }

        foreach (var (address, f) in _followers)
        {
            if (address == Self || f.Address != address)
            {
                throw new InvariantViolationException("primary: it tracks only other servers, each under its own address", $"follower {f.Address} under {address}, self {Self}");
            }

            if (f.MatchIndex > last || f.NextIndex < 1 || f.NextIndex > last + 1)
            {
                throw new InvariantViolationException("primary: follower match <= last index and 1 <= next <= last index + 1", $"{address} match {f.MatchIndex}, next {f.NextIndex}, last index {last}");
            }
        }

        // A write waits for its commit, and is forgotten once applied.
        foreach (var index in _waiters.Keys.Concat(_extraWaiters.Keys))
        {
            if (index <= commit || index > last)
            {
                throw new InvariantViolationException("primary: every waiting write is uncommitted and in the log", $"waiter at {index}, commit index {commit}, last index {last}");
            }
        }

        foreach (var (id, index) in _inflightWrites)
        {
            if (index <= commit || index > last)
            {
                throw new InvariantViolationException("primary: every write in flight is uncommitted and in the log", $"client {id.ClientId:x} seq {id.Seq} at {index}, commit index {commit}, last index {last}");
            }
        }

        if (_pendingChange is { } pending && pending.Member == Self)
        {
            throw new InvariantViolationException("primary: never asks to change its own in-sync membership", $"{pending.Op} {pending.Member}");
        }

        // The monitor promotes only from the in-sync set and never removes the primary from it.
        if (Config.Epoch == Epoch && Config.Primary == Self && !Config.IsInSync(Self))
        {
            throw new InvariantViolationException("primary: in the in-sync set of the configuration naming it", $"config {Config}");
        }
    }

    // ------------------------------------------------------------------ clients

    private void AddWaiter(long index, Waiter waiter)
    {
        if (!_waiters.TryAdd(index, waiter))
        {
            if (!_extraWaiters.TryGetValue(index, out var list))
            {
                _extraWaiters[index] = list = [];
            }

            list.Add(waiter);
        }
    }

    private void ReplyOk(Waiter waiter, ReadOnlyMemory<byte> result) =>
        Env.Reply(waiter.Client, new ClientResponse(waiter.ClientId, waiter.Seq, ResponseStatus.Ok, Epoch, Self, result));

    private readonly record struct Waiter(ClientRef Client, ulong ClientId, long Seq);

    private sealed record PendingChange(long RequestId, InSyncOp Op, NodeAddress Member, long ExpectedVersion, long SentAt);

    private sealed record Handover(NodeAddress Target, long Deadline, bool ReadySent = false);
}

using Understudy.Core.FailureDetection;
using Understudy.Protocol;

namespace Understudy.Core.Monitor;

/// <summary>
/// What the monitor knows of each server: liveness from heartbeats and the failure detector, crashes from a
/// lost connection and a refused probe, restarts from incarnations, and whether the primary of an epoch has
/// said it is gone. It records what it learns in the journal; the failover state machine reads its verdicts.
/// </summary>
internal sealed class MemberTracker
{
    private readonly MonitorOptions _options;
    private readonly TimeProvider _time;
    private readonly IMonitorEnvironment _env;
    private readonly MonitorJournal _journal;
    private readonly FailureDetectorFactory _detectorFactory;
    private readonly Dictionary<NodeAddress, MemberHealth> _members = [];
    private readonly long _startedAt;
    private long _lastTickAt = long.MinValue;
    private long _suspectNotBefore = long.MinValue;
    private long _primaryGoneEpoch = -1;

    /// <summary>Starts with the members of the stored configuration, each as if heard from at <paramref name="startedAt"/>.</summary>
    public MemberTracker(MonitorOptions options, TimeProvider time, IMonitorEnvironment environment, MonitorJournal journal, IEnumerable<MemberInfo> stored, long startedAt)
    {
        _options = options;
        _time = time;
        _env = environment;
        _journal = journal;
        _detectorFactory = options.CreateDetector();
        _startedAt = startedAt;
        foreach (var m in stored)
        {
            Add(m.Address).Detector.Heartbeat(startedAt);
        }
    }

    /// <summary>Every server heard of, in the order first heard of: the order ticks visit them, and so record their events, in.</summary>
    public IReadOnlyCollection<MemberHealth> All => _members.Values;

    /// <summary>Monotonic timestamp of the first heartbeat this monitor received, or <see cref="long.MinValue"/>.</summary>
    public long FirstHeartbeatAt { get; private set; } = long.MinValue;

    public bool TryGet(NodeAddress address, out MemberHealth member) => _members.TryGetValue(address, out member!);

    public MemberHealth? Find(NodeAddress address) => _members.GetValueOrDefault(address);

    public bool IsAlive(NodeAddress address) => _members.TryGetValue(address, out var m) && m.Liveness == Liveness.Alive;

    /// <summary>Whether the primary of <paramref name="epoch"/> has said it is gone (it reported itself a backup in that epoch).</summary>
    public bool PrimaryGoneIn(long epoch) => _primaryGoneEpoch == epoch;

    /// <summary>How long ago (ms) the server's last heartbeat arrived, or null.</summary>
    public double? HeartbeatAgeMs(NodeAddress address, long now) =>
        _members.TryGetValue(address, out var m) && m.LastHeartbeatAt != long.MinValue ? Ms(now - m.LastHeartbeatAt) : null;

    /// <summary>
    /// This monitor just became active: judge nobody failed on what it saw as a follower (a heartbeat stream to it
    /// may have only just started) until <paramref name="until"/>, at least a failure timeout away. A suspected member
    /// is unknown again; one still silent at the end of the grace is suspected at the next tick. Proof of death
    /// (a refused probe, a restart reported) still counts at once.
    /// </summary>
    public void BeginGrace(long until)
    {
        _suspectNotBefore = Math.Max(_suspectNotBefore, until);
        foreach (var m in _members.Values)
        {
            if (m.Liveness == Liveness.Suspected)
            {
                m.Liveness = Liveness.Unknown;
            }
        }
    }

    /// <summary>
    /// Periodic work: suspect the silent, probe again those whose connection stays lost. Only the active monitor
    /// probes (<paramref name="mayProbe"/>); a follower still suspects, so it knows who is alive when it takes over.
    /// </summary>
    public void Tick(long now, bool mayProbe = true)
    {
        // A monitor that was itself stalled (CPU starvation, a GC pause, SIGSTOP) has not read the heartbeats
        // waiting for it yet: give them a moment to be heard before suspecting anyone. This only delays the slow
        // path (which also waits for the lease); a crash is still seen at once through the connection and probe.
        if (_lastTickAt != long.MinValue && now - _lastTickAt > Ticks(_options.SelfStallThreshold))
        {
            _suspectNotBefore = now + Ticks(_options.HeartbeatInterval * 2);
        }

        // The first tick: a host may build the monitor well before it runs (joining its monitor group takes a while),
        // and nobody can have heartbeated a process that was not reading yet. Judge nobody for a failure timeout from
        // here, or a restarted monitor would suspect a healthy primary and promote whichever backup is heard first.
        if (_lastTickAt == long.MinValue)
        {
            _suspectNotBefore = Math.Max(_suspectNotBefore, now + Ticks(_options.FailureTimeout));
        }

        _lastTickAt = now;
        var maySuspect = now >= _suspectNotBefore;
        foreach (var m in _members.Values)
        {
            if (maySuspect && m.Liveness is Liveness.Alive or Liveness.Unknown && m.Detector.IsSuspected(now))
            {
                m.Liveness = Liveness.Suspected;
                _journal.Record(MonitorEventKind.MemberSuspected, m.Address, $"no heartbeat for {Ms(now - Math.Max(m.LastHeartbeatAt, _startedAt)):0} ms");
            }

            // A killed process may close its heartbeat connection a moment before its listening socket: a probe
            // in that moment is accepted. Probe again while the connection stays lost, so the crash is still
            // seen in milliseconds rather than after the failure timeout and the lease.
            if (mayProbe && m.ConnectionLost && !m.ProbeInFlight && m.Liveness != Liveness.Down && now >= m.NextProbeAt)
            {
                StartProbe(m);
            }
        }
    }

    /// <summary>A server's heartbeat: it is alive; note a restart, and whether the primary of the epoch is gone.</summary>
    public void OnHeartbeat(in Heartbeat heartbeat, long now, ClusterConfig config)
    {
        if (FirstHeartbeatAt == long.MinValue)
        {
            FirstHeartbeatAt = now;
        }

        var m = _members.GetValueOrDefault(heartbeat.From) ?? Add(heartbeat.From);
        var restarted = m.Incarnation != 0 && m.Incarnation != heartbeat.Incarnation;
        m.Incarnation = heartbeat.Incarnation;
        m.LastHeartbeat = heartbeat;
        m.LastHeartbeatAt = now;
        m.ConnectionLost = false;
        m.NextProbeAt = long.MaxValue;
        m.Detector.Heartbeat(now);
        if (m.Liveness != Liveness.Alive)
        {
            var was = m.Liveness;
            m.Liveness = Liveness.Alive;
            m.DownReason = string.Empty;
            if (was != Liveness.Unknown || config.IsMember(m.Address))
            {
                _journal.Record(MonitorEventKind.MemberUp, m.Address, $"heartbeats resumed ({was.ToString().ToLowerInvariant()} before), log ends at {heartbeat.LastIndex}");
            }
        }

        if (restarted)
        {
            _journal.Record(MonitorEventKind.MemberRestarted, m.Address, heartbeat.Durable ? "new process; its log was fsynced" : "new process without fsync=always: out of sync until it catches up");
            if (!heartbeat.Durable)
            {
                m.LostUnsyncedWrites = true;
            }
        }

        // The primary of this epoch is gone when its server says it is a backup in that very epoch: a restarted
        // process never leads the epoch it recovered with. A new process that has not heard of the epoch yet
        // will take the promotion from this heartbeat's answer, unless it may have lost writes it acknowledged.
        // (An incarnation change alone proves nothing: the new process may be the one that took the promotion.)
        if (config.Epoch > 0 && heartbeat.From == config.Primary && heartbeat.Role == ServerRole.Backup &&
            (heartbeat.Epoch >= config.Epoch || (restarted && !heartbeat.Durable)))
        {
            _primaryGoneEpoch = config.Epoch;
        }
    }

    /// <summary>
    /// The heartbeat connection from a server dropped: probe its port to tell a crash from a glitch. A follower
    /// (<paramref name="mayProbe"/> false) only notes it: the first tick after it becomes active probes.
    /// </summary>
    public void OnConnectionLost(NodeAddress server, bool mayProbe = true)
    {
        if (_members.TryGetValue(server, out var m) && m.Liveness != Liveness.Down)
        {
            m.ConnectionLost = true;
            if (!mayProbe)
            {
                m.NextProbeAt = Math.Min(m.NextProbeAt, long.MinValue + 1);
            }
            else if (!m.ProbeInFlight)
            {
                StartProbe(m);
            }
        }
    }

    /// <summary>The highest epoch any server has reported in its last heartbeat (0 if none).</summary>
    public long HighestEpochReported()
    {
        var highest = 0L;
        foreach (var m in _members.Values)
        {
            if (m.LastHeartbeat is { } hb)
            {
                highest = Math.Max(highest, Math.Max(hb.Epoch, hb.LastEpoch));
            }
        }

        return highest;
    }

    /// <summary>The answer to a probe; true when it proves the server down (a new verdict to act on).</summary>
    public bool OnProbeResult(NodeAddress server, ProbeOutcome outcome, long now)
    {
        if (!_members.TryGetValue(server, out var m))
        {
            return false;
        }

        m.ProbeInFlight = false;
        if (!m.ConnectionLost || m.Liveness == Liveness.Down)
        {
            return false;
        }

        if (outcome != ProbeOutcome.Refused)
        {
            // Not proof of death (a paused process, a partition, or a dying one whose port is still open): ask again soon.
            m.NextProbeAt = now + Ticks(_options.ReprobeInterval);
            return false;
        }

        m.Liveness = Liveness.Down;
        m.DownReason = "connection reset and port refused";
        _journal.Record(MonitorEventKind.MemberDown, server, m.DownReason);
        return true;
    }

    /// <summary>Why the primary <paramref name="config"/> names has failed, or null while it is healthy.</summary>
    public FailureCause? JudgePrimary(ClusterConfig config)
    {
        if (config.Primary.IsNone)
        {
            return FailureCause.NoPrimary;
        }

        if (_primaryGoneEpoch == config.Epoch)
        {
            return FailureCause.PrimaryRestarted;
        }

        if (!_members.TryGetValue(config.Primary, out var p))
        {
            return FailureCause.UnknownToMonitor;
        }

        return p.Liveness switch
        {
            Liveness.Down => FailureCause.PrimaryCrashed,
            Liveness.Suspected => FailureCause.MissedHeartbeats,
            _ => null,
        };
    }

    /// <summary>What the promotion rule sees: every configured member with its liveness and last reported log.</summary>
    public PromotionView PromotionView(ClusterConfig config)
    {
        var candidates = new List<PromotionCandidate>(config.Members.Length);
        foreach (var member in config.Members)
        {
            var m = _members.GetValueOrDefault(member.Address);
            var hb = m?.LastHeartbeat;
            candidates.Add(new PromotionCandidate(
                member.Address,
                member.Priority,
                m is { Liveness: Liveness.Alive } && hb is not null,
                config.IsInSync(member.Address),
                hb?.Role ?? ServerRole.Backup,
                hb?.LastIndex ?? 0,
                hb?.LastEpoch ?? 0,
                hb?.Durable ?? false,
                m?.LostUnsyncedWrites ?? false));
        }

        return new PromotionView(config, config.Primary, candidates);
    }

    /// <summary>Throws when a member's health contradicts itself.</summary>
    public void CheckInvariants()
    {
        foreach (var m in _members.Values)
        {
            if (m.Liveness == Liveness.Down && (!m.ConnectionLost || m.ProbeInFlight))
            {
                throw new InvariantViolationException($"{m.Address} is down, but its connection is not lost or a probe of it is in flight");
            }

            if (m.Liveness == Liveness.Alive && m.LastHeartbeat is null)
            {
                throw new InvariantViolationException($"{m.Address} is alive without a heartbeat");
            }
        }
    }

    private MemberHealth Add(NodeAddress address)
    {
        var m = new MemberHealth(address, _detectorFactory(_time.TimestampFrequency));
        _members[address] = m;
        return m;
    }

    private void StartProbe(MemberHealth m)
    {
        m.ProbeInFlight = true;
        m.NextProbeAt = long.MaxValue;
        _env.Probe(m.Address);
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private double Ms(long ticks) => ticks * 1000.0 / _time.TimestampFrequency;
}

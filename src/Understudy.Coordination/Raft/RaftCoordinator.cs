using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.Membership;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Understudy.Protocol;
using Understudy.Storage;

namespace Understudy.Coordination.Raft;

/// <summary>
/// A monitor group of three or five on Raft (DotNext.Net.Cluster over TCP). The Raft log holds configuration
/// compare-and-sets; the Raft leader is the active monitor; its leadership is confirmed for a lease after every
/// heartbeat round a quorum acknowledges.
/// </summary>
/// <remarks>
/// <para><b>ConfirmedUntil.</b> DotNext's followers refuse to stand or vote while they have heard from the leader within
/// their own election timeout (each member draws from its own staggered window, and no window starts below
/// <see cref="RaftCoordinatorOptions.LowerElectionTimeout"/>, which the options validate), so once a quorum has
/// acknowledged a heartbeat round that started at t0, no other member can win an election before
/// t0 + LowerElectionTimeout on any of their clocks. DotNext's leader lease (<see cref="RaftCluster{TMember}.TryGetLeaseToken"/>)
/// is built on this, but exposes only a token, not its deadline; so the coordinator runs the round itself
/// (<see cref="RaftCluster{TMember}.ForceReplicationAsync"/>, which completes only after a round that started after the
/// call reached a quorum), takes t0 before the call, and publishes t0 + <see cref="RaftCoordinatorOptions.LeaseDuration"/>
/// (the timeout shortened by the assumed clock drift) — and only while DotNext's own lease token agrees.</para>
/// <para><b>Restarts.</b> A member that restarts has forgotten when it last heard from the leader, and DotNext would
/// let it vote at once. It therefore stays silent for one <see cref="RaftCoordinatorOptions.UpperElectionTimeout"/>
/// before it joins, so a lease it acknowledged before the restart has run out first.</para>
/// <para><b>Membership</b> is static: every member starts with the same list of all members (DotNext without cold
/// start), so the first boot of a fresh group forms it, and a restart on existing data rejoins with its term, vote
/// and log intact. A dead member may be replaced by a fresh one with an empty folder under the same addresses while
/// the others hold a quorum and are level with the leader: it has forgotten its vote, but it is silent for one upper
/// election timeout after it starts, longer than any candidate collects votes, so no election it voted in is still
/// counting; and with an empty log it cannot be elected over members that hold the committed one. It has also
/// forgotten what it acknowledged, which is why the others must be level first (README, operator section).</para>
/// <para><b>A refused snapshot.</b> A follower too far behind (a replacement with an empty folder) is sent the leader's
/// snapshot. When installing it takes longer than the request timeout (a loaded machine: the follower writes and
/// flushes the file), the leader gives up on the answer although the follower installed it. DotNext 6.12 then wedges:
/// the follower refuses the same snapshot again, as its commit index has reached it, and the leader answers each
/// refusal by sending the same snapshot from index 0 again, so the follower never gets the entries after it nor
/// hears a leader, until the leader has a newer snapshot (up to <see cref="RaftCoordinatorOptions.SnapshotEvery"/>
/// changes later; seen in CI: a replacement stuck for 30 s). <see cref="SnapshotRefusalWatch"/> notices the
/// refusal in DotNext's log, and the leader writes a newer snapshot at once: it asks for one at the next entry and
/// appends two no-op entries (the second makes DotNext ship the first's snapshot; not empty, as DotNext's log applies only entries with a payload), which the follower accepts.</para>
/// </remarks>
public sealed class RaftCoordinator : IMonitorCoordinator
{
    private static readonly long RefreshEventTicks = Stopwatch.Frequency / 100; // at most one refresh event per 10 ms

    // Newer snapshots for a follower that keeps refusing one come at most this often: each costs two entries and a
    // snapshot file, and a follower that cannot install any within the request timeout would otherwise ask for one
    // every heartbeat.
    private static readonly TimeSpan SnapshotAdvanceSpacing = TimeSpan.FromSeconds(1);

    private readonly RaftCoordinatorOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stopping = new();

    // Released when this member becomes the leader, so the loop starts its first confirmation round at once.
    private readonly SemaphoreSlim _elected = new(0, 1);
    private readonly long _leaseTicks;
    private Dictionary<EndPoint, MonitorGroupMember> _byRaft = [];
    private volatile ConfigStateMachine? _stateMachine;
    private WriteAheadLog? _log;
    private volatile RaftCluster? _cluster;
    private Task _loop = Task.CompletedTask;
    private Leadership _leadership = Leadership.Unknown;
    private long _confirmedTerm = -1;
    private long _confirmedUntil;
    private long _lastRaised;
    private bool _quorumLost;

    // When this member last held DotNext's consensus token (led, or followed a leader with a quorum); 0: never.
    private long _lastConsensusAt;
    private long _inSyncAt;
    private int _disposed;

    // 1 while a newer snapshot is being written for a follower that refused one; the task doing it; when it last began.
    private int _advancingSnapshot;
    private Task _snapshotAdvance = Task.CompletedTask;
    private SnapshotRefusalWatch? _refusalWatch;
    private long _snapshotAdvancedAt;

    /// <summary>Validates <paramref name="options"/>; <see cref="StartAsync"/> joins the group.</summary>
    public RaftCoordinator(RaftCoordinatorOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<RaftCoordinator>();
        _leaseTicks = (long)(options.LeaseDuration.TotalSeconds * Stopwatch.Frequency);
    }

    /// <summary>The options this member runs with.</summary>
    public RaftCoordinatorOptions Options => _options;

    /// <summary>The lease one confirmation round buys, in <see cref="Stopwatch"/> ticks (tests and the dashboard use it).</summary>
    public long LeaseTicks => _leaseTicks;

    /// <summary>How many snapshot sends to followers this member's <see cref="SnapshotRefusalWatch"/> recognised in DotNext's log.</summary>
    internal long SnapshotSendsSeen => _refusalWatch?.SnapshotsSeen ?? 0;

    /// <summary>A test's fault, set before <see cref="StartAsync"/>: runs before each restore from a snapshot file.</summary>
    internal Func<CancellationToken, ValueTask>? BeforeSnapshotRestore { get; set; }

    public Leadership Leadership
    {
        get
        {
            lock (_gate)
            {
                return _leadership;
            }
        }
    }

    public event Action<Leadership>? LeadershipChanged;

    public event Action<ClusterConfig>? ConfigChanged;

    public IReadOnlyList<MonitorPeer> Peers
    {
        get
        {
            var cluster = _cluster;
            if (cluster is null)
            {
                return [.. _options.Members.Select(m => new MonitorPeer(m.Heartbeat, false, MonitorPeerState.Unreachable, m == _options.Self))];
            }

            var localLeader = IsLocalLeader(cluster);
            var peers = new List<MonitorPeer>();
            foreach (var member in cluster.Members)
            {
                var address = HeartbeatOf(member.EndPoint);
                var state = PeerState(member, localLeader);
                peers.Add(new MonitorPeer(address, member.IsLeader, state, !member.IsRemote));
            }

            peers.Sort((a, b) => a.Address.CompareTo(b.Address));
            return peers;
        }
    }

    public async ValueTask StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_cluster is not null)
        {
            throw new InvalidOperationException("the coordinator is already started");
        }

        var byRaft = new Dictionary<EndPoint, MonitorGroupMember>();
        foreach (var member in _options.Members)
        {
            byRaft[await ResolveAsync(member.Raft, cancellationToken).ConfigureAwait(false)] = member;
        }

        var self = await ResolveAsync(_options.Self.Raft, cancellationToken).ConfigureAwait(false);
        var listen = _options.Listen is { } bind ? await ResolveAsync(bind, cancellationToken).ConfigureAwait(false) : self;
        _byRaft = byRaft;

        var root = Path.GetFullPath(Path.Combine(_options.DataDirectory, "raft"));
        var snapshots = new DirectoryInfo(Path.Combine(root, "snapshots"));
        var stateMachine = new ConfigStateMachine(snapshots, _options.SnapshotEvery, _logger) { BeforeRestore = BeforeSnapshotRestore };
        stateMachine.Changed += OnConfigApplied;
        WriteAheadLog? log = null;
        RaftCluster? cluster = null;
        try
        {
            // The snapshot must be restored before the log is opened: the log replays from it.
            await stateMachine.RestoreAsync(cancellationToken).ConfigureAwait(false);
            log = new WriteAheadLog(
                new WriteAheadLog.Options
                {
                    // DotNext 6.12 flushes every append and commit before acknowledging it (FlushOnCommit is always
                    // on), which Raft needs: a member must not acknowledge what a crash could take back.
                    Location = Path.Combine(root, "wal"),
                    HashAlgorithm = WriteAheadLog.IntegrityHashAlgorithm.Crc32,
                },
                stateMachine);

            var window = _options.ElectionWindowOf(_options.Self);
            _refusalWatch = new SnapshotRefusalWatch(_loggerFactory, OnSnapshotRefused);
            var configuration = new RaftCluster.TcpConfiguration(listen)
            {
                PublicEndPoint = self,
                // This member's own staggered window (see RaftCoordinatorOptions.ElectionWindow), never below the
                // group's LowerElectionTimeout that the lease uses.
                LowerElectionTimeout = window.LowerMs,
                UpperElectionTimeout = window.UpperMs,
                RequestTimeout = _options.RequestTimeout,
                ColdStart = false,
                IsLeaderLeaseEnabled = true,
                ConfigurationStorage = null, // in memory, filled below from the static member list
                // DotNext's own lines go to the host as they are; the watch also spots a refused snapshot (remarks).
                LoggerFactory = _refusalWatch,
            };
            var members = configuration.ConfigurationStorage as InMemoryClusterConfigurationStorage<EndPoint>
                ?? throw new InvalidOperationException("DotNext's default membership storage is no longer the in-memory one");
            var builder = members.CreateInitialConfigurationBuilder();
            foreach (var endPoint in byRaft.Keys)
            {
                builder.Add(endPoint);
            }

            builder.Build();

            cluster = new RaftCluster(configuration) { AuditTrail = log };

            // See the remarks: a restarted member must not vote while a lease it acknowledged may still run. The
            // silence is measured on the monotonic clock the leases use: a timer may fire up to a tick early.
            await StaySilentAsync(_options.UpperElectionTimeout, cancellationToken).ConfigureAwait(false);
            cluster.LeaderChanged += OnLeaderChanged;
            cluster.ReplicationCompleted += OnInSync;
            await cluster.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (cluster is not null)
            {
                cluster.LeaderChanged -= OnLeaderChanged;
                cluster.ReplicationCompleted -= OnInSync;
                await cluster.DisposeAsync().ConfigureAwait(false);
            }

            if (log is not null)
            {
                await log.DisposeAsync().ConfigureAwait(false);
            }

            stateMachine.Changed -= OnConfigApplied;
            await stateMachine.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _stateMachine = stateMachine;
        _log = log;
        _cluster = cluster;
        var own = _options.ElectionWindowOf(_options.Self);
        _logger.RaftStarted(_options.Self.Heartbeat, self, byRaft.Count, root, own.LowerMs, own.UpperMs,
            (long)_options.LeaseDuration.TotalMilliseconds);
        _loop = RunAsync(_stopping.Token);
    }

    private static async Task StaySilentAsync(TimeSpan silence, CancellationToken cancellationToken)
    {
        var since = Stopwatch.GetTimestamp();
        for (var left = silence; left > TimeSpan.Zero; left = silence - Stopwatch.GetElapsedTime(since))
        {
            await Task.Delay(left + TimeSpan.FromMilliseconds(1), cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask<ClusterConfig> LoadAsync(CancellationToken cancellationToken)
    {
        var (cluster, stateMachine) = Started();
        if (IsLocalLeader(cluster))
        {
            // Linearizable on the leader: while a confirmed lease holds, no other leader can have committed anything,
            // so waiting for this term's first entry to be applied is enough; otherwise a round confirms leadership.
            // DotNext's own lease alone is not enough: it lasts this member's own lower election timeout, and with
            // staggered windows another member's may be shorter; ConfirmedUntil uses the group's lowest.
            var barrier = HoldsConfirmedLease(cluster) && cluster.TryGetLeaseToken(out var lease) && !lease.IsCancellationRequested
                ? ReadBarrierType.Weak
                : ReadBarrierType.Strong;
            try
            {
                await cluster.ApplyReadBarrierAsync(barrier, cancellationToken).ConfigureAwait(false);
            }
            catch (QuorumUnreachableException)
            {
                // Leadership was lost during the barrier and no leader is known: this member is a follower now,
                // and a follower answers from its copy.
            }
        }

        return stateMachine.Current;
    }

    /// <inheritdoc />
    /// <remarks>
    /// When <paramref name="cancellationToken"/> fires, or leadership is lost, while the entry is in flight, this throws
    /// (<see cref="OperationCanceledException"/>, <see cref="NotActiveMonitorException"/>) and the entry may still commit; the caller reloads, and the compare-and-set on the version
    /// makes a retry safe.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="next"/> does not raise the version, or lowers the epoch.</exception>
    public async ValueTask<ConfigWriteResult> CompareAndSetAsync(long expectedVersion, ClusterConfig next, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(next);
        var (cluster, stateMachine) = Started();
        if (!IsActive(cluster))
        {
            throw new NotActiveMonitorException(ActiveAddress(cluster));
        }

        if (next.Version <= expectedVersion)
        {
            throw new ArgumentException($"the new configuration's version {next.Version} must be above the expected {expectedVersion}", nameof(next));
        }

        var current = stateMachine.Current;
        if (current.Version == expectedVersion && next.Epoch < current.Epoch)
        {
            throw new ArgumentException($"the new configuration's epoch {next.Epoch} is below the stored {current.Epoch}: the epoch never goes back", nameof(next));
        }

        var pending = new PendingWrite();
        try
        {
            // Returns once the entry is committed by a quorum and applied here.
            await cluster.ReplicateAsync(new ConfigCommand(expectedVersion, next).ToBytes(), pending, cancellationToken).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
            throw new NotActiveMonitorException(ActiveAddress(cluster));
        }

        if (pending.Result is { } result)
        {
            return result;
        }

        // The context did not reach the apply (DotNext read the entry back from disk): the applied state decides.
        var now = stateMachine.Current;
        return now.SameAs(next) ? new ConfigWriteResult(true, next) : new ConfigWriteResult(false, now);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Volatile.Read(ref _snapshotAdvance).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_cluster is { } cluster)
        {
            cluster.LeaderChanged -= OnLeaderChanged;
            cluster.ReplicationCompleted -= OnInSync;
            await cluster.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await cluster.DisposeAsync().ConfigureAwait(false);
        }

        if (_log is { } log)
        {
            await log.DisposeAsync().ConfigureAwait(false);
        }

        if (_stateMachine is { } stateMachine)
        {
            stateMachine.Changed -= OnConfigApplied;
            await stateMachine.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
        _elected.Dispose();
    }

    // The heartbeat of the coordinator itself: on the leader a confirmation round, everywhere a fresh view.
    private async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var started = Stopwatch.GetTimestamp();
                var cluster = _cluster!;
                if (IsLocalLeader(cluster))
                {
                    // Published before the round too: a new leader's view (active once its term's first entry is
                    // committed) reaches the host while the round runs, so its linearizable load overlaps the round.
                    Publish();
                    await ConfirmAsync(cluster, cancellationToken).ConfigureAwait(false);
                }

                Publish();

                // The next round at the usual rate, or at once when this member has just won an election: a new
                // active monitor can renew the primary's lease only after its first confirmed round, and the
                // primary's lease is running out meanwhile (the old active monitor died), so waiting for the timer
                // would cost up to a whole interval of the clients' write stall.
                // Likewise while this member leads but has not confirmed its term yet: the first round of a term often
                // commits nothing (DotNext's first guess of a follower's log misses and it retries from an earlier
                // entry), and a whole interval more before the retry was part of the write stall of a slow
                // kill-monitor round. A short pause, not none, so a leader that cannot confirm does not spin.
                var interval = IsLocalLeader(cluster) && !HasConfirmedTerm(cluster)
                    ? _options.ConfirmationInterval / 10
                    : _options.ConfirmationInterval;
                var wait = interval - Stopwatch.GetElapsedTime(started);
                if (wait > TimeSpan.Zero)
                {
                    await _elected.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception e)
        {
            _logger.RaftLoopFailed(e);
            lock (_gate)
            {
                _confirmedTerm = -1;
                _confirmedUntil = 0;
            }
        }
    }

    private async Task ConfirmAsync(RaftCluster cluster, CancellationToken cancellationToken)
    {
        var term = cluster.AuditTrail.Term;
        var start = Stopwatch.GetTimestamp();
        using var round = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);

        // A round that takes longer than the lease could not extend it anyway.
        round.CancelAfter(_options.LeaseDuration);
        try
        {
            await cluster.ForceReplicationAsync(round.Token).ConfigureAwait(false);
        }
        catch (NotLeaderException)
        {
            return;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return;
        }

        if (!IsActive(cluster) || cluster.AuditTrail.Term != term || !cluster.TryGetLeaseToken(out var lease) || lease.IsCancellationRequested)
        {
            return;
        }

        lock (_gate)
        {
            if (_confirmedTerm != term)
            {
                _confirmedTerm = term;
                _confirmedUntil = 0;
            }

            _confirmedUntil = Math.Max(_confirmedUntil, start + _leaseTicks);
        }
    }

    private void Publish()
    {
        var cluster = _cluster;
        if (cluster is null || Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        // The view is read under the lock too: DotNext's LeaderChanged and the loop both publish, and a view read
        // earlier must not overwrite a later one (the term would go back).
        lock (_gate)
        {
            var term = cluster.AuditTrail.Term;
            var active = IsActive(cluster);
            var activeAddress = ActiveAddress(cluster);
            var reached = 1 + cluster.Members.Count(m => m.IsRemote && m.Status == ClusterMemberStatus.Available);
            var total = cluster.Members.Count;

            // A quorum is behind this member while it leads or follows a leader with one (DotNext's consensus
            // token). DotNext's member statuses alone are not evidence: a follower whose peers all died never sends
            // them anything, so they stay "available" for ever, and a member alone said it had a quorum. So between
            // leaders (an election) a member counts as having a quorum only for one upper election timeout after it
            // last had the token, and only while its last requests reached a majority: /health does not flicker at
            // every election, and a member left alone says so within a second.
            // A follower keeps DotNext's token while it believes in its leader, even one long dead and without an
            // election (seen: 30 s, term unchanged), so it also needs a round from that leader within two upper
            // election timeouts.
            var now = Stopwatch.GetTimestamp();
            var heard = Volatile.Read(ref _inSyncAt);
            var hearsLeader = heard != 0 && Stopwatch.GetElapsedTime(heard, now) < 2 * _options.UpperElectionTimeout;
            var consensus = HasConsensus(cluster) && (active || IsLocalLeader(cluster) || hearsLeader);
            if (consensus)
            {
                _lastConsensusAt = now;
            }

            var hasQuorum = consensus
                || (reached > total / 2 && _lastConsensusAt != 0 && Stopwatch.GetElapsedTime(_lastConsensusAt, now) < _options.UpperElectionTimeout);
            var confirmed = active && _confirmedTerm == term ? _confirmedUntil : 0;
            var next = new Leadership(term, active, activeAddress, confirmed, hasQuorum);
            var previous = _leadership;
            if (next == previous)
            {
                return;
            }

            _leadership = next;
            now = Stopwatch.GetTimestamp();

            // The first confirmation of a term is a change, not a refresh: it is when this monitor may start granting.
            var changed = (previous with { ConfirmedUntil = 0 }) != (next with { ConfirmedUntil = 0 }) ||
                (previous.ConfirmedUntil == 0) != (next.ConfirmedUntil == 0);
            if (!changed && now - _lastRaised < RefreshEventTicks)
            {
                // A refresh of ConfirmedUntil alone: the newest value is in Leadership for whoever polls.
                return;
            }

            if (changed && (previous.Term, previous.IsActive, previous.Active) != (next.Term, next.IsActive, next.Active))
            {
                _logger.RaftLeadershipChanged(next.Term, next.Active, next.IsActive);
            }

            if (!hasQuorum && !_quorumLost)
            {
                _quorumLost = true;
                _logger.RaftNoQuorum(reached, total);
            }
            else if (hasQuorum && _quorumLost)
            {
                _quorumLost = false;
                _logger.RaftQuorumRegained(reached, total);
            }

            _lastRaised = now;

            // Raised under the lock so handlers see changes in order; Leadership's getter takes the same lock,
            // which a handler on this thread may re-enter.
            try
            {
                LeadershipChanged?.Invoke(next);
            }
            catch (Exception e)
            {
                _logger.RaftHandlerFailed(e, nameof(LeadershipChanged));
            }
        }
    }

    private void OnLeaderChanged(RaftCluster<RaftClusterMember> cluster, RaftClusterMember? leader)
    {
        if (leader is { IsRemote: false } && _elected.CurrentCount == 0)
        {
            try
            {
                _elected.Release();
            }
            catch (Exception e) when (e is SemaphoreFullException or ObjectDisposedException)
            {
                // Released by a concurrent change already (one wake-up is enough), or the coordinator is gone.
            }
        }

        Publish();
    }

    // Called on DotNext's replicator for that member: starts the newer snapshot in the background (remarks).
    // Internal so a test can stand in for the watch, as the wedge's timing cannot be produced on demand.
    internal void OnSnapshotRefused(EndPoint member, long index)
    {
        if (Volatile.Read(ref _disposed) != 0 || _cluster is not { } cluster || _stateMachine is not { } stateMachine ||
            !IsLocalLeader(cluster) || Interlocked.CompareExchange(ref _advancingSnapshot, 1, 0) != 0)
        {
            return;
        }

        _logger.RaftSnapshotRefused(member, index);
        Volatile.Write(ref _snapshotAdvance, AdvanceSnapshotAsync(cluster, stateMachine, _stopping.Token));
    }

    private async Task AdvanceSnapshotAsync(RaftCluster cluster, ConfigStateMachine stateMachine, CancellationToken cancellationToken)
    {
        try
        {
            // Off DotNext's replicator thread, which called OnSnapshotRefused from inside its log line.
            await Task.Yield();
            var since = Volatile.Read(ref _snapshotAdvancedAt);
            var wait = since == 0 ? TimeSpan.Zero : SnapshotAdvanceSpacing - Stopwatch.GetElapsedTime(since);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            }

            Volatile.Write(ref _snapshotAdvancedAt, Stopwatch.GetTimestamp());

            // The first no-op entry is written as a snapshot when applied; DotNext commits that snapshot (and ships
            // it) only once a later entry has been applied, hence the second. Neither changes the configuration. They
            // are not empty: DotNext's log never hands an entry without a payload to the state machine, so an empty
            // one would leave the requested snapshot untaken (a CI run wedged so, the leader re-sending the old one).
            stateMachine.RequestSnapshot();
            await cluster.ReplicateAsync(ConfigCommand.NoOp, null, cancellationToken).ConfigureAwait(false);
            await cluster.ReplicateAsync(ConfigCommand.NoOp, null, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception e)
        {
            // Leadership lost meanwhile (the next leader starts the follower afresh), or no quorum.
            _logger.RaftSnapshotAdvanceFailed(e);
        }
        finally
        {
            Volatile.Write(ref _advancingSnapshot, 0);
        }
    }

    // DotNext raises this on a follower when a round from the leader found it level (no entries to append).
    private void OnInSync(RaftCluster<RaftClusterMember> cluster, RaftClusterMember leader) =>
        Volatile.Write(ref _inSyncAt, Stopwatch.GetTimestamp());

    private void OnConfigApplied(ClusterConfig config) => ConfigChanged?.Invoke(config);

    private (RaftCluster Cluster, ConfigStateMachine StateMachine) Started()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _cluster is { } cluster && _stateMachine is { } stateMachine
            ? (cluster, stateMachine)
            : throw new InvalidOperationException("the coordinator is not started");
    }

    private static bool IsLocalLeader(RaftCluster cluster) => cluster.Leader is { IsRemote: false };

    private bool HasConfirmedTerm(RaftCluster cluster)
    {
        var term = cluster.AuditTrail.Term;
        lock (_gate)
        {
            return _confirmedTerm == term;
        }
    }

    private bool HoldsConfirmedLease(RaftCluster cluster)
    {
        var term = cluster.AuditTrail.Term;
        lock (_gate)
        {
            return _confirmedTerm == term && Stopwatch.GetTimestamp() < _confirmedUntil;
        }
    }

    // Active: the local leader whose term's first entry is committed, so its state machine can answer for the term.
    private static bool IsActive(RaftCluster cluster)
    {
        try
        {
            return IsLocalLeader(cluster) && !cluster.LeadershipToken.IsCancellationRequested;
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return false;
        }
    }

    // DotNext's consensus token: live while this member is leader or follows a leader with a quorum behind it.
    private static bool HasConsensus(RaftCluster cluster)
    {
        try
        {
            return !cluster.ConsensusToken.IsCancellationRequested;
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return false;
        }
    }

    private NodeAddress ActiveAddress(RaftCluster cluster) =>
        cluster.Leader is { } leader ? HeartbeatOf(leader.EndPoint) : NodeAddress.None;

    private NodeAddress HeartbeatOf(EndPoint endPoint) =>
        _byRaft.TryGetValue(endPoint, out var member) ? member.Heartbeat : NodeAddress.None;

    private MonitorPeerState PeerState(RaftClusterMember member, bool localLeader)
    {
        if (!member.IsRemote)
        {
            // This member knows its own progress: a follower with a leader that has not been level with it (a round
            // that brought no new entries) for two election timeouts is still catching up.
            var inSyncAt = Volatile.Read(ref _inSyncAt);
            return localLeader || !HasConsensus(_cluster!) || Stopwatch.GetElapsedTime(inSyncAt) < _options.UpperElectionTimeout * 2
                ? MonitorPeerState.Up
                : MonitorPeerState.Lagging;
        }

        // DotNext 6.12 keeps each follower's replication index internal, so the leader reports reachability only.
        // A follower talks only to the leader, so it knows other followers only as DotNext last saw them; one it
        // never reached counts as unreachable rather than claiming health nobody observed.
        return member.Status == ClusterMemberStatus.Available ? MonitorPeerState.Up : MonitorPeerState.Unreachable;
    }

    private static async ValueTask<IPEndPoint> ResolveAsync(NodeAddress address, CancellationToken cancellationToken)
    {
        if (IPAddress.TryParse(address.Host, out var ip))
        {
            return new IPEndPoint(ip, address.Port);
        }

        var addresses = await Dns.GetHostAddressesAsync(address.Host, cancellationToken).ConfigureAwait(false);
        var chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault()
            ?? throw new ArgumentException($"monitor group address {address} does not resolve", nameof(address));
        return new IPEndPoint(chosen, address.Port);
    }
}

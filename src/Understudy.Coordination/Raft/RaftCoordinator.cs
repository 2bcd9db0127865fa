using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
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
/// <para><b>One candidate at a time.</b> While the leader is heard, every follower but the one next in line stands by
/// (DotNext's standby mode: it votes and acknowledges, never stands), so after the leader dies only that one stands and
/// no vote is split; the others return to normal mode one at a time when no leader is named for a while
/// (<see cref="Succession"/>, RaftCoordinator.Succession.cs).</para>
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
public sealed partial class RaftCoordinator : IMonitorCoordinator
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
            await EnterSuccessionAsync(cluster, byRaft, cancellationToken).ConfigureAwait(false);
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

        SpreadCommit(cluster);
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

    private void OnConfigApplied(ClusterConfig config) => ConfigChanged?.Invoke(config);

    private (RaftCluster Cluster, ConfigStateMachine StateMachine) Started()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _cluster is { } cluster && _stateMachine is { } stateMachine
            ? (cluster, stateMachine)
            : throw new InvalidOperationException("the coordinator is not started");
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

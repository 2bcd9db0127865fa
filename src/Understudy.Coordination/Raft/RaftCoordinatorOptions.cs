using System.Collections.Immutable;
using Understudy.Protocol;

namespace Understudy.Coordination.Raft;

/// <summary>
/// One monitor of a Raft group and the three addresses it answers on.
/// </summary>
/// <param name="Raft">Where the other monitors reach its Raft endpoint (an IP address, or a host name resolved at start).</param>
/// <param name="Heartbeat">Its server-facing heartbeat address: what <see cref="Leadership.Active"/> and <see cref="MonitorPeer.Address"/> name.</param>
/// <param name="Client">Its client-facing address, carried for the hosts that tell clients where the active monitor is.</param>
public sealed record MonitorGroupMember(NodeAddress Raft, NodeAddress Heartbeat, NodeAddress Client);

/// <summary>
/// How a <see cref="RaftCoordinator"/> joins its group. Membership is static: every member is started with the same
/// list (itself in <see cref="Self"/>, the others in <see cref="Peers"/>).
/// </summary>
public sealed record RaftCoordinatorOptions
{
    /// <summary>This monitor.</summary>
    public required MonitorGroupMember Self { get; init; }

    /// <summary>The other monitors of the group (two for a group of three, four for five).</summary>
    public required ImmutableArray<MonitorGroupMember> Peers { get; init; }

    /// <summary>
    /// Where this member's Raft endpoint binds, when that is not <see cref="MonitorGroupMember.Raft"/> of
    /// <see cref="Self"/> (behind a proxy or a port mapping). The others always dial <see cref="Self"/>'s address,
    /// which also names this member in the group.
    /// </summary>
    public NodeAddress? Listen { get; init; }

    /// <summary>The monitor's data folder; the Raft log and its snapshots live in <c>&lt;data&gt;/raft</c>.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>
    /// The shortest election timeout of any member: the start of the first-ranked member's window (see
    /// <see cref="ElectionWindowOf"/>). A follower that has heard from the leader within its own timeout neither stands
    /// nor votes, and no member's timeout is shorter than this, which is what the leader's lease rests on; 150 ms elects
    /// a new leader well within a server's 500 ms lease.
    /// </summary>
    public TimeSpan LowerElectionTimeout { get; init; } = TimeSpan.FromMilliseconds(150);

    /// <summary>
    /// The longest election timeout of any member: the end of the last-ranked member's window. A restarting member
    /// stays silent this long before it joins.
    /// </summary>
    /// <remarks>
    /// 230 ms rather than Raft's usual 300: DotNext's members grant a (pre-)vote only once their own timeout has run
    /// out, so an election after the leader's death completes when the slower of the survivors' windows ends, and
    /// with staggered windows a wider range would only make that later (split votes are rarer for the stagger, not
    /// for the range; one remains possible when the first survivor's retry meets the second's late timer).
    /// </remarks>
    public TimeSpan UpperElectionTimeout { get; init; } = TimeSpan.FromMilliseconds(230);

    /// <summary>
    /// The width of each member's own election timeout window. The windows are staggered by rank (members ordered by
    /// Raft address, the same order on every member) and spread evenly from <see cref="LowerElectionTimeout"/> to
    /// <see cref="UpperElectionTimeout"/>, disjoint, so two members rarely time out together and stand against each
    /// other (a split vote, then a whole new election; seen as the slow rounds of
    /// <c>bench failover --fault kill-monitor</c> when every member drew from one shared window). The stagger alone left
    /// such splits in a third of those rounds; now only the member next in line stands (<see cref="Succession"/>), and
    /// the ranking also puts the successor's window last, so the voters' timeouts have run out when it stands.
    /// </summary>
    public TimeSpan ElectionWindow { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How often the active monitor runs a confirmation round (one heartbeat round a quorum must acknowledge) to
    /// push <see cref="Leadership.ConfirmedUntil"/> forward. Well under the lease, so a late round or two leaves
    /// time to spare.
    /// </summary>
    public TimeSpan ConfirmationInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// The largest relative rate difference assumed between any two monitors' monotonic clocks (0.05 = one clock
    /// may run 5 % faster than another over the lease). The lease is shortened by it.
    /// </summary>
    public double MaxClockDrift { get; init; } = 0.05;

    /// <summary>
    /// How long one Raft request may take before the peer counts as unavailable for that round. Well under
    /// <see cref="LeaseDuration"/>: DotNext ends a heartbeat round only when every member has answered or timed out,
    /// and a confirmation lasts one lease from the round's start, so with a member that is partitioned (silent, not
    /// refusing) a timeout as long as the lease left the active monitor never confirmed, granting no lease, though
    /// it had its quorum (seen in chaos monitor-partition). Elections wait for every voter the same way.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMilliseconds(60);

    /// <summary>A snapshot of the configuration is taken every this many applied changes, so the log stays bounded.</summary>
    public int SnapshotEvery { get; init; } = 64;

    /// <summary>
    /// The lease the active monitor holds after each confirmation round, measured from the round's start:
    /// <see cref="LowerElectionTimeout"/> (the shortest timeout of any member, not this member's own) shortened by
    /// <see cref="MaxClockDrift"/>.
    /// </summary>
    public TimeSpan LeaseDuration => LowerElectionTimeout * (1 - MaxClockDrift);

    /// <summary>
    /// The election timeout window of <paramref name="member"/>, in whole milliseconds (DotNext takes ints): the
    /// member ranked r of n (by Raft address) draws between Lower + r × (Upper − Lower − Window) / (n − 1) and that
    /// plus <see cref="ElectionWindow"/>. Every window lies within [<see cref="LowerElectionTimeout"/>,
    /// <see cref="UpperElectionTimeout"/>]; <see cref="Validate"/> checks it, and that the windows are disjoint.
    /// </summary>
    public (int LowerMs, int UpperMs) ElectionWindowOf(MonitorGroupMember member)
    {
        var rank = RankOf(member);
        var count = Members.Count();
        var lower = (int)LowerElectionTimeout.TotalMilliseconds;
        var upper = (int)UpperElectionTimeout.TotalMilliseconds;
        var window = (int)Math.Ceiling(ElectionWindow.TotalMilliseconds);
        var start = count == 1 ? lower : lower + (int)((long)rank * (upper - lower - window) / (count - 1));
        return (start, start + window);
    }

    /// <summary>
    /// The rank of <paramref name="member"/> in the group, 0 first: members ordered by Raft address, the same order on
    /// every member. It places the member's election window (<see cref="ElectionWindowOf"/>) and its place in the line
    /// of succession (<see cref="Succession"/>).
    /// </summary>
    public int RankOf(MonitorGroupMember member)
    {
        ArgumentNullException.ThrowIfNull(member);
        var rank = Members.Select(m => m.Raft).Order().ToList().IndexOf(member.Raft);
        return rank >= 0 ? rank : throw new ArgumentException($"{member.Raft} is not a member of this group", nameof(member));
    }

    /// <summary>
    /// How long the member next in line to lead (see <see cref="Succession"/>) has, after it stopped hearing the leader,
    /// to win an election before the member after it may stand too: two upper election timeouts, its own timeout and
    /// one retry of a refused pre-vote, each well over an election's few round trips of <see cref="RequestTimeout"/>.
    /// </summary>
    public TimeSpan SuccessorChance => UpperElectionTimeout * 2;

    /// <summary>All members, this one first.</summary>
    public IEnumerable<MonitorGroupMember> Members => Peers.IsDefault ? [Self] : Peers.Prepend(Self);

    /// <summary>The member whose heartbeat address is <paramref name="heartbeat"/> (for instance
    /// <see cref="Leadership.Active"/>, to find the active monitor's client address), or null.</summary>
    public MonitorGroupMember? MemberByHeartbeat(NodeAddress heartbeat) => Members.FirstOrDefault(m => m.Heartbeat == heartbeat);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that cannot work.</summary>
    public void Validate()
    {
        if (Self is null)
        {
            throw new ArgumentException("Self must name this monitor's addresses.", nameof(Self));
        }

        if (Peers.IsDefault || Peers.Length < 2)
        {
            throw new ArgumentException("A Raft monitor group needs at least two peers (three monitors); one monitor uses the configuration file instead.", nameof(Peers));
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException("DataDirectory must name the monitor's data folder.", nameof(DataDirectory));
        }

        var raft = new HashSet<NodeAddress>();
        var heartbeat = new HashSet<NodeAddress>();
        foreach (var m in Members)
        {
            if (m is null || m.Raft.IsNone || m.Heartbeat.IsNone)
            {
                throw new ArgumentException("Every member needs a Raft and a heartbeat address.", nameof(Peers));
            }

            if (!raft.Add(m.Raft))
            {
                throw new ArgumentException($"Raft address {m.Raft} is listed twice.", nameof(Peers));
            }

            if (!heartbeat.Add(m.Heartbeat))
            {
                throw new ArgumentException($"Heartbeat address {m.Heartbeat} is listed twice.", nameof(Peers));
            }
        }

        if (Listen is { IsNone: true })
        {
            throw new ArgumentException("Listen, when given, must be an address.", nameof(Listen));
        }

        if (LowerElectionTimeout <= TimeSpan.Zero || UpperElectionTimeout <= LowerElectionTimeout)
        {
            throw new ArgumentException($"Election timeouts must satisfy 0 < lower < upper (got {LowerElectionTimeout.TotalMilliseconds} and {UpperElectionTimeout.TotalMilliseconds} ms).", nameof(LowerElectionTimeout));
        }

        if (LowerElectionTimeout.TotalMilliseconds > int.MaxValue || UpperElectionTimeout.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentException("Election timeouts must fit in int milliseconds.", nameof(UpperElectionTimeout));
        }

        if (ElectionWindow < TimeSpan.FromMilliseconds(1) || LowerElectionTimeout + ElectionWindow > UpperElectionTimeout)
        {
            throw new ArgumentException($"ElectionWindow must be at least 1 ms and fit between the lower and upper election timeouts (got {ElectionWindow.TotalMilliseconds} ms).", nameof(ElectionWindow));
        }

        // The lease rests on no member timing out before LowerElectionTimeout (LeaseDuration uses it, not a member's
        // own lower bound), and a restart's silence on none timing out after UpperElectionTimeout; disjoint windows
        // are what keeps two members from standing at once.
        var windows = Members.Select(ElectionWindowOf).Order().ToList();
        for (var i = 0; i < windows.Count; i++)
        {
            if (windows[i].LowerMs < LowerElectionTimeout.TotalMilliseconds || windows[i].UpperMs > UpperElectionTimeout.TotalMilliseconds)
            {
                throw new ArgumentException($"A member's election window [{windows[i].LowerMs}, {windows[i].UpperMs}] ms leaves [{LowerElectionTimeout.TotalMilliseconds}, {UpperElectionTimeout.TotalMilliseconds}] ms.", nameof(ElectionWindow));
            }

            if (i > 0 && windows[i].LowerMs <= windows[i - 1].UpperMs)
            {
                throw new ArgumentException($"The members' election windows overlap ([{windows[i - 1].LowerMs}, {windows[i - 1].UpperMs}] and [{windows[i].LowerMs}, {windows[i].UpperMs}] ms): widen the range between the lower and upper election timeouts or narrow ElectionWindow.", nameof(ElectionWindow));
            }
        }

        if (MaxClockDrift is < 0 or >= 0.5 || double.IsNaN(MaxClockDrift))
        {
            throw new ArgumentException($"MaxClockDrift must be in [0, 0.5) (got {MaxClockDrift}).", nameof(MaxClockDrift));
        }

        if (ConfirmationInterval <= TimeSpan.Zero || ConfirmationInterval >= LeaseDuration)
        {
            throw new ArgumentException($"ConfirmationInterval must be positive and under the lease of {LeaseDuration.TotalMilliseconds} ms, or leadership lapses between rounds.", nameof(ConfirmationInterval));
        }

        if (RequestTimeout <= TimeSpan.Zero || RequestTimeout + ConfirmationInterval >= LeaseDuration)
        {
            throw new ArgumentException($"RequestTimeout must be positive and, with the confirmation interval of {ConfirmationInterval.TotalMilliseconds} ms, under the lease of {LeaseDuration.TotalMilliseconds} ms: a round waits for a silent member's timeout, and a round that outlasts the lease confirms nothing (got {RequestTimeout.TotalMilliseconds} ms).", nameof(RequestTimeout));
        }

        if (SnapshotEvery < 1)
        {
            throw new ArgumentException("SnapshotEvery must be at least 1.", nameof(SnapshotEvery));
        }
    }
}

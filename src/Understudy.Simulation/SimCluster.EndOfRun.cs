using System.Text;
using Understudy.Checking;
using Understudy.Checking.Linearizability;
using Understudy.Core.Monitor;
using Understudy.Core.StateMachines;
using Understudy.Core.StateMachines.KeyValue;
using Understudy.Protocol;

namespace Understudy.Simulation;

// The end of a run: heal everything, wait for the cluster to settle, read every server back and judge the history.
internal sealed partial class SimCluster
{
    private void HealEverything()
    {
        foreach (var c in _clients)
        {
            c.Active = false;
        }

        World.Network = NetworkProfile.Calm;
        World.HealAll();
        World.Log("net", "END OF FAULTS: healing everything");
        foreach (var monitor in _monitors)
        {
            if (!monitor.Up)
            {
                RestartMonitor(monitor);
            }
            else if (monitor.Paused)
            {
                monitor.Resume();
            }
        }

        foreach (var s in _servers)
        {
            if (!s.Up)
            {
                World.CountFault("restart-server");
                s.Start();
            }
            else if (s.Paused)
            {
                s.Resume();
            }
        }
    }

    /// <summary>Waits for recovery and reads the whole log back; null (and a violation) if the cluster never recovers.</summary>
    private List<string>? Settle()
    {
        var options = World.Options;
        var deadline = World.Now + SimWorld.Micros(options.SettleTimeout);
        World.RunUntil(() => _clients.All(c => c.Idle), World.Now + SimWorld.Micros(options.Client.RequestTimeout + TimeSpan.FromSeconds(1)));

        if (!World.RunUntil(Converged, deadline))
        {
            World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"no recovery {options.SettleTimeout.TotalSeconds:0} s after every fault was healed: {DescribeState()}"));
            return null;
        }

        _checker = new SimClient(this, -1, record: false);
        _checker.Start();
        if (options.StateMachine == SimulatedStateMachine.KeyValue)
        {
            return ReadEveryKey() ? CompareStates() : null;
        }

        var final = new List<string>();
        long from = 1;
        while (true)
        {
            ClientResultHolder? result = null;
            _checker.Call(RequestKind.Read, MessageStoreCommands.Read(from + final.Count, MessageStoreCommands.MaxReadCount), TimeSpan.FromSeconds(5), r => result = new ClientResultHolder(r));
            World.RunUntil(() => result is not null, World.Now + SimWorld.Micros(TimeSpan.FromSeconds(6)));
            if (result is null || result.Value.Outcome != Core.Client.OutcomeKind.Ok)
            {
                World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"the final read failed ({result?.Value.Error ?? "no answer"}): {DescribeState()}"));
                return null;
            }

            IReadOnlyList<SequencedMessage> page;
            try
            {
                page = MessageStoreCommands.DecodeMessages(result.Value.Payload.Span);
            }
            catch (MessagesRemovedException removed) when (final.Count == 0 && removed.FirstRetained > from)
            {
                from = removed.FirstRetained; // retention removed the oldest: read what is kept
                continue;
            }

            if (page.Count == 0)
            {
                break; // a page can be short of MaxReadCount when the byte cap cuts it: only an empty one is the end
            }

            final.AddRange(page.Select(m => m.Text));
        }

        // Every server must hold the same state: the same committed log, applied the same way.
        var primary = CurrentPrimary()!;
        var primaryLog = ((MessageStore)primary.Node!.State.Machine).ToList().Select(m => m.Text).ToList();
        if (!primaryLog.SequenceEqual(final, StringComparer.Ordinal))
        {
            World.Violations.Add(new Violation(ViolationKind.Invariant, $"the final read ({final.Count}) differs from the primary's message store ({primaryLog.Count})"));
        }

        if (from > 1)
        {
            // Retention removed the oldest messages from every server: the checker judges the whole order, so the
            // messages before the first kept one come from the committed log as the simulator saw it being committed,
            // applied here the way a server applies it; the kept ones must agree with it.
            var all = CommittedMessages();
            if (all.Count != from - 1 + final.Count || !all.Skip((int)(from - 1)).SequenceEqual(final, StringComparer.Ordinal))
            {
                World.Violations.Add(new Violation(ViolationKind.Invariant, $"the messages kept from {from} ({final.Count}) differ from the committed log's ({all.Count - (from - 1)})"));
            }

            final = [.. all.Take((int)(from - 1)), .. final];
        }

        CompareStates();
        return final;
    }

    /// <summary>Every server must hold the same state: the same committed log, applied the same way. Returns an empty final log.</summary>
    private List<string> CompareStates()
    {
        var primary = CurrentPrimary()!;
        var snapshot = primary.Node!.State.SnapshotBytes();
        foreach (var s in _servers.Where(s => s != primary))
        {
            if (s.Node!.State.AppliedIndex == primary.Node!.State.AppliedIndex && !s.Node.State.SnapshotBytes().AsSpan().SequenceEqual(snapshot))
            {
                World.Violations.Add(new Violation(ViolationKind.Invariant, $"{s.Name}'s state differs from the primary's at applied index {primary.Node.State.AppliedIndex}"));
            }
        }

        return [];
    }

    /// <summary>
    /// With the key-value store: once the cluster has recovered, a get of every key, recorded in the history (process -1):
    /// an acknowledged write lost in a failover contradicts what these read. False (and a violation) if one fails.
    /// </summary>
    private bool ReadEveryKey()
    {
        var keys = Enumerable.Range(0, World.Options.Keys).SelectMany(i => new[] { KeyValueCalls.Register(i), KeyValueCalls.Counter(i) });
        foreach (var key in keys)
        {
            var open = new KvOperation { Process = -1, Function = KvFunction.Get, Key = key, InvokedAt = World.Now, Outcome = KvOutcome.Unknown };
            ClientResultHolder? result = null;
            _checker!.Call(RequestKind.Read, KeyValueCommands.Get(key), TimeSpan.FromSeconds(5), r => result = new ClientResultHolder(r));
            World.RunUntil(() => result is not null, World.Now + SimWorld.Micros(TimeSpan.FromSeconds(6)));
            if (result is null || result.Value.Outcome != Core.Client.OutcomeKind.Ok)
            {
                World.Violations.Add(new Violation(ViolationKind.NoRecovery, $"the final get of {key} failed ({result?.Value.Error ?? "no answer"}): {DescribeState()}"));
                return false;
            }

            World.KeyValueHistory.Add(KeyValueCalls.Record(open, result.Value, World.Now));
        }

        return true;
    }

    /// <summary>The key-value history judged by the linearizability checker (one thread: sweeps already run seeds in parallel).</summary>
    private CheckResult JudgeKeyValueHistory()
    {
        var history = World.KeyValueHistory;
        var result = LinearizabilityChecker.Check(history, new LinearizabilityOptions { MaxDegreeOfParallelism = 1, Budget = TimeSpan.FromSeconds(30) });
        var violations = new List<Violation>();
        foreach (var key in result.Keys.Where(k => k.Verdict != LinearizabilityVerdict.Linearizable))
        {
            violations.Add(new Violation(ViolationKind.NotLinearizable, key.Verdict == LinearizabilityVerdict.Unknown
                ? $"key {key.Key}: the checker ran out of its budget on {key.Operations} operations: undecided"
                : key.ToString()));
        }

        var acknowledged = history.Count(o => o.Outcome == KvOutcome.Ok);
        return new CheckResult(violations, new CheckStats
        {
            Operations = history.Count,
            Acknowledged = acknowledged,
            Failed = history.Count(o => o.Outcome == KvOutcome.Failed),
            Indeterminate = history.Count(o => o.Outcome == KvOutcome.Unknown),
            Reads = history.Count(o => o.Function == KvFunction.Get),
        });
    }

    /// <summary>Every message in the committed log, in order: its entries applied to a store that keeps everything.</summary>
    private List<string> CommittedMessages()
    {
        var store = new MessageStore();
        var state = new ReplicatedState(store, World.Options.ServerForSeed.MaxClientSessions, World.Options.ServerForSeed.SessionIdleTimeout);
        foreach (var entry in _committed)
        {
            state.Apply(entry);
        }

        return [.. store.ToList().Select(m => m.Text)];
    }

    /// <summary>The monitor that acts for the cluster: the one monitor, or the group's leader once it knows it leads.</summary>
    private SimMonitor? ActiveMonitor()
    {
        if (Coordinator is null)
        {
            return _monitors[0].Up ? _monitors[0] : null;
        }

        return Coordinator.Leader is { Node.IsActive: true } leader && leader.ViewTerm == Coordinator.Term ? leader : null;
    }

    private bool Converged()
    {
        if (ActiveMonitor() is not { } monitor || monitor.Node!.Phase != FailoverPhase.Stable)
        {
            return false;
        }

        var config = monitor.Node.Config;
        if (config.Primary.IsNone || !_byAddress.TryGetValue(config.Primary, out var primary) || !primary.Up || !primary.Node!.IsServing)
        {
            return false;
        }

        var node = primary.Node;
        if (node.CommitIndex != node.LastIndex || !_servers.All(s => s.Up && config.IsInSync(s.Address)))
        {
            return false;
        }

        return _servers.All(s => s.Node!.CommitIndex == node.CommitIndex && s.Node.LastIndex == node.LastIndex);
    }

    private string DescribeState()
    {
        var sb = new StringBuilder();
        if (!Group && _monitors[0].Node is { } m)
        {
            sb.Append($"monitor phase {m.Phase}, config {m.Config}; ");
        }
        else if (Group)
        {
            sb.Append(DescribeMonitors()).Append("; ");
        }

        foreach (var s in _servers)
        {
            sb.Append(s.Node is { } n
                ? $"{s.Name} {n.Role} e{n.Epoch} last={n.LastIndex}@{n.LastEpoch} commit={n.CommitIndex} serving={n.IsServing}; "
                : $"{s.Name} down; ");
            if (s.Node is { Role: ServerRole.Primary } p)
            {
                foreach (var f in p.Followers)
                {
                    sb.Append($"[{f.Address} match={f.MatchIndex} next={f.NextIndex} probing={f.Probing} inflight={f.Inflight} sent={f.LastSentAt} ack={f.LastAckAt} disconnected={f.Disconnected}] ");
                }
            }
        }

        return sb.ToString();
    }

    private string DescribeMonitors() => Coordinator is null
        ? string.Empty
        : $"coordinator term {Coordinator.Term} leader {Coordinator.Leader?.Name ?? "none"} committed v{Coordinator.Committed.Version}; " + string.Join("; ", _monitors.Select(m => m.Node is { } n
            ? $"{m.Name} {(n.IsActive ? "active" : "follower")} term {n.Leadership.Term} phase {n.Phase} config v{n.Config.Version} e{n.Config.Epoch} primary {n.Config.Primary}{(m.Paused ? " paused" : string.Empty)}"
            : $"{m.Name} down"));

    private static string Show(LogEntry e) => $"{e.Index}@{e.Epoch} {e.Kind} client={e.ClientId:x} seq={e.RequestSeq}";

    private sealed class ClientResultHolder(Core.Client.ClientResult value)
    {
        public Core.Client.ClientResult Value { get; } = value;
    }
}

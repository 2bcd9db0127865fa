namespace Understudy.Simulation;

// The faults of the monitor, or of the monitor group, and bringing a monitor back.
internal sealed partial class SimCluster
{
    private void CrashMonitor() => CrashMonitor(_monitors[0], "crash-monitor");

    private void CrashMonitor(SimMonitor monitor, string kind)
    {
        if (!monitor.Up)
        {
            return;
        }

        World.CountFault(kind);
        monitor.Crash();
        World.After(World.Uniform(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(1500)), () =>
        {
            if (!monitor.Up)
            {
                RestartMonitor(monitor);
            }
        });
    }

    private void RestartMonitor(SimMonitor monitor)
    {
        World.CountFault("restart-monitor");
        monitor.Start();

        // Clients reconnect to the monitor and subscribe again (in a group, those whose connection failed have moved
        // on to another member and ask it whenever they need to).
        if (Group)
        {
            return;
        }

        foreach (var c in _clients.Append(_checker).OfType<SimClient>())
        {
            if (!World.IsCut(c, monitor))
            {
                var life = c.Life;
                World.After(World.Latency(), () => c.Deliver(life, c.Session.Start));
            }
        }
    }

    /// <summary>The group's own faults: its active member, a follower or a majority crashed, paused or cut off; a former active member isolated beside a new one; a drifting clock.</summary>
    private void MonitorGroupFault()
    {
        var active = Coordinator!.Leader;
        var followers = _monitors.Where(m => m != active).ToList();
        var follower = followers[World.Random.Next(followers.Count)];
        var majority = _monitors.OrderBy(_ => World.Random.Next()).Take((_monitors.Count / 2) + 1).ToList();
        switch (World.Random.Next(11))
        {
            case 0 when active is not null:
                CrashMonitor(active, "crash-active-monitor");
                break;
            case 1:
                CrashMonitor(follower, "crash-follower-monitor");
                break;
            case 2 when majority.Any(m => m.Up):
                World.CountFault("crash-monitor-majority");
                foreach (var m in majority)
                {
                    CrashMonitor(m, "crash-monitor");
                }

                break;
            case 3 when active is not null:
                Pause(active, "pause-active-monitor", LongPause());
                break;
            case 4:
                Pause(follower, "pause-follower-monitor", LongPause());
                break;
            case 5:
                World.CountFault("pause-monitor-majority");
                var duration = LongPause();
                foreach (var m in majority)
                {
                    Pause(m, "pause-monitor", duration);
                }

                break;
            case 6 when active is not null:
                PartitionFor("partition-active-monitor", World.Partition([active], AllBut([active])), PartitionDuration());
                break;
            case 7:
                PartitionFor("partition-follower-monitor", World.Partition([follower], AllBut([follower])), PartitionDuration());
                break;
            case 8:
                // The majority keeps the servers half the time: then it can elect a leader that sees them.
                var withServers = World.Random.Next(2) == 0;
                var cut = withServers ? AllBut(majority).Where(n => n is SimMonitor) : AllBut(majority);
                PartitionFor("partition-monitor-majority", World.Partition(majority, cut), PartitionDuration());
                break;
            case 9 when active is not null:
                // Cut off from the group, long enough for the group to elect another: the former active monitor runs
                // on beside the new one, believing it still leads. Mostly the primary is on its side (a split with
                // the primary and the old active monitor in one room), cut off from the other servers and monitors but
                // not from clients: the new active monitor then replaces a primary the old one would keep leasing.
                var isolation = SimWorld.Micros(World.Options.MonitorGroupLease) + World.Uniform(TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(2500));
                var side = new List<SimNode> { active };
                if (World.Random.Next(3) != 0 && CurrentPrimary() is { } primary)
                {
                    side.Add(primary);
                }

                var rest = followers.Cast<SimNode>().Concat(_servers.Where(s => !side.Contains(s)));
                PartitionFor("isolate-former-active-monitor", World.Partition(side, rest), isolation);
                break;
            case 10:
                // Any rate within the bound the leases assume, fast or slow, from now on.
                var monitor = _monitors[World.Random.Next(_monitors.Count)];
                var drift = (World.Random.NextDouble() * 2 - 1) * Coordinator.DriftBound;
                World.CountFault("monitor-clock-drift");
                World.Log(monitor.Name, $"CLOCK DRIFT {drift * 100:0.00}%");
                monitor.Clock.SetDrift(drift);
                break;
        }
    }
}

using Understudy.Protocol;

namespace Understudy.Simulation;

// The faults injected into servers and the network while the clients work (the monitor group's own are in
// SimCluster.MonitorFaults.cs): split from the run itself so each concern reads on its own.
internal sealed partial class SimCluster
{
    private void InjectFault()
    {
        if (World.Now >= _workloadEnd)
        {
            return;
        }

        var roll = World.Random.Next(100);
        if (Group && roll < 48)
        {
            // A group gets its own faults in the monitor share, at the expense of some server crashes.
            if (roll < 22)
            {
                CrashServer();
            }
            else
            {
                MonitorGroupFault();
            }
        }
        else if (roll < 28)
        {
            CrashServer();
        }
        else if (roll < 38)
        {
            CrashMonitor();
        }
        else if (roll < 58)
        {
            PauseSomething();
        }
        else if (roll < 88)
        {
            PartitionSomething();
        }
        else
        {
            HealPartitionsNow();
        }

        World.After(Math.Max(1000, World.Exponential(World.Options.MeanFaultInterval)), InjectFault);
    }

    private SimServer? CurrentPrimary() =>
        _servers.Where(s => s.Up && s.Node!.Role == ServerRole.Primary).OrderByDescending(s => s.Node!.Epoch).FirstOrDefault();

    private SimServer PickServer(bool preferPrimary)
    {
        if (preferPrimary && World.Random.Next(2) == 0 && CurrentPrimary() is { } primary)
        {
            return primary;
        }

        return _servers[World.Random.Next(_servers.Count)];
    }

    private void CrashServer()
    {
        var server = PickServer(preferPrimary: true);
        if (!server.Up)
        {
            return;
        }

        World.CountFault(server.Node!.Role == ServerRole.Primary ? "crash-primary" : "crash-backup");
        server.Crash();
        NotifyConnectionLost(server);
        if (World.Random.Next(100) < 85)
        {
            World.After(World.Uniform(TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(2000)), () =>
            {
                if (!server.Up)
                {
                    World.CountFault("restart-server");
                    server.Start();
                }
            });
        }
    }

    /// <summary>
    /// The crash-during-backfill fault: a backup that has just installed a snapshot is, in some runs, crashed before the
    /// entries its snapshot's state reads are all on its disk (none arrived yet, or some unsynced), then restarted. A
    /// restart must find the snapshot with the log from where it resumed, and go on backfilling from there.
    /// </summary>
    internal void AfterSnapshotInstalled(SimServer server)
    {
        if (World.Now >= _workloadEnd || World.Random.Next(100) >= 40)
        {
            return;
        }

        var life = server.Life;
        // Soon: the entries after the resume point arrive within a round trip, and reach the disk within a sync.
        World.After(World.Uniform(TimeSpan.Zero, TimeSpan.FromMilliseconds(2)), () =>
        {
            if (!server.Up || server.Life != life || server.Node is not { } node || node.DurableIndex >= node.SnapshotIndex)
            {
                return;
            }

            World.CountFault("crash-backfilling");
            server.Crash();
            NotifyConnectionLost(server);
            World.After(World.Uniform(TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(1000)), () =>
            {
                if (!server.Up)
                {
                    World.CountFault("restart-server");
                    server.Start();
                }
            });
        });
    }


    /// <summary>Every process but <paramref name="these"/>.</summary>
    private IEnumerable<SimNode> AllBut(IReadOnlyCollection<SimNode> these) =>
        _monitors.Cast<SimNode>().Concat(_servers).Concat(_clients).Where(n => !these.Contains(n));

    // Short pauses stay under the failure timeout; long ones outlast the lease.
    private long LongPause() => World.Random.Next(2) == 0
        ? World.Uniform(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(200))
        : World.Uniform(TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(2500));

    private long PartitionDuration() => World.Uniform(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(3000));

    private void Pause(SimNode node, string kind, long duration)
    {
        if (!node.Up || node.Paused)
        {
            return;
        }

        World.CountFault(kind);
        World.Log(node.Name, $"PAUSED for {duration / 1000} ms");
        node.Pause();
        var life = node.Life;
        World.After(duration, () =>
        {
            if (node.Up && node.Life == life && node.Paused)
            {
                World.Log(node.Name, "RESUMED");
                node.Resume();
            }
        });
    }

    private void PartitionFor(string kind, int id, long duration)
    {
        World.CountFault(kind);
        World.Log("net", kind.ToUpperInvariant());
        World.After(duration, () =>
        {
            World.CountFault("heal");
            World.Log("net", $"HEAL {kind}");
            World.Heal(id);
        });
    }

    private void PauseSomething()
    {
        SimNode node = World.Random.Next(10) == 0 ? (Group ? _monitors[World.Random.Next(_monitors.Count)] : _monitors[0]) : PickServer(preferPrimary: true);
        if (!node.Up || node.Paused)
        {
            return;
        }

        // Checked before the duration is drawn, so a run's random draws stay those of its seed.
        Pause(node, node is SimMonitor ? "pause-monitor" : "pause-server", LongPause());
    }

    private void PartitionSomething()
    {
        var roll = World.Random.Next(100);
        int id;
        string kind;
        var primary = CurrentPrimary();
        if (roll < 40 && primary is not null)
        {
            // The nasty one: the primary loses the monitor and its backups but its clients still reach it.
            kind = "partition-primary";
            id = World.Partition([primary], _servers.Where(s => s != primary).Cast<SimNode>().Concat(_monitors));
        }
        else if (roll < 60)
        {
            var server = PickServer(preferPrimary: false);
            kind = "partition-server";
            id = World.Partition([server], _servers.Where(s => s != server).Cast<SimNode>().Concat(_monitors).Concat(_clients));
        }
        else if (roll < 75)
        {
            kind = "partition-monitor";
            var others = World.Random.Next(2) == 0 ? _servers.Cast<SimNode>() : _servers.Cast<SimNode>().Concat(_clients);
            id = World.Partition([Group ? _monitors[World.Random.Next(_monitors.Count)] : _monitors[0]], others);
        }
        else if (roll < 90)
        {
            kind = "partition-split";
            var nodes = _servers.Cast<SimNode>().Concat(_monitors).OrderBy(_ => World.Random.Next()).ToList();
            var cut = 1 + World.Random.Next(nodes.Count - 1);
            id = World.Partition(nodes.Take(cut), nodes.Skip(cut));
        }
        else
        {
            kind = "partition-link";
            var a = _servers[World.Random.Next(_servers.Count)];
            var b = _servers[World.Random.Next(_servers.Count)];
            if (a == b)
            {
                return;
            }

            id = World.Partition([a], [b]);
        }

        PartitionFor(kind, id, PartitionDuration());
    }

    private void HealPartitionsNow()
    {
        if (World.HasPartition)
        {
            World.CountFault("heal");
            World.Log("net", "HEAL all");
            World.HealAll();
        }
    }

    /// <summary>A crashed process's TCP connections reset: peers that can reach it notice.</summary>
    private void NotifyConnectionLost(SimServer crashed)
    {
        var address = crashed.Address;
        foreach (var monitor in _monitors.Where(m => m.Up && !World.IsCut(crashed, m)))
        {
            var life = monitor.Life;
            World.After(World.Latency(), () => monitor.Deliver(life, () => monitor.Node!.OnServerConnectionLost(address)));
        }

        foreach (var s in _servers.Where(s => s != crashed && s.Up && !World.IsCut(crashed, s)))
        {
            var life = s.Life;
            World.After(World.Latency(), () => s.Deliver(life, () => s.OnPeerConnectionLost(address)));
        }

        foreach (var c in _clients.Where(c => !World.IsCut(crashed, c)))
        {
            var life = c.Life;
            World.After(World.Latency(), () => c.Deliver(life, () => c.OnServerConnectionLost(address)));
        }
    }
}

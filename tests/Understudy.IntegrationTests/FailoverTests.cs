using Understudy.Orchestration.Polling;
using Understudy.Orchestration.Workloads;
using Understudy.Protocol;
using Understudy.Transport;

namespace Understudy.IntegrationTests;

/// <summary>Real processes, real kill -9 and SIGSTOP: no acknowledged message may be lost or duplicated.</summary>
public class FailoverTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Kill_9_of_the_primary_while_a_client_writes_loses_and_duplicates_nothing()
    {
        await using var test = await TestCluster.StartAsync();
        await using var work = new Workload();
        work.StartWriter(test.NewClient(), "m");

        await work.WaitForAckedAsync(200, "writes before the kill");
        var primary = await test.PrimaryAsync();
        primary.Process.Kill();
        var before = work.Recorder.Acknowledged;
        await test.WaitForAsync("promotion after kill -9", s => s.Primary is not null && s.Primary != primary.Address.ToString());
        await work.WaitForAckedAsync(before + 200, "writes after the failover");
        await work.StopAsync(TestContext.Current.CancellationToken);

        var log = await test.NewClient().ReadAllAsync(TestContext.Current.CancellationToken);
        var result = work.AssertValid(log, output);
        Assert.True(result.Stats.Failed + result.Stats.Indeterminate == 0, $"every write should have been acknowledged through the failover; errors: {work.Recorder.LastErrors()}");
    }

    [Fact]
    public async Task Chain_failure_down_to_the_last_server_loses_nothing()
    {
        await using var test = await TestCluster.StartAsync(serverArgs: ["--min-in-sync", "1"]);
        await using var work = new Workload();
        work.StartWriter(test.NewClient(), "chain");

        await work.WaitForAckedAsync(100, "writes with three servers");
        var first = await test.PrimaryAsync();
        first.Process.Kill();
        var status = await test.WaitForAsync("first promotion after kill -9 of the primary", s => s.Primary is not null && s.Primary != first.Address.ToString() && s.Phase == "Stable");
        var second = test.Cluster.Servers.Single(s => s.Address.ToString() == status.Primary);
        var epochAfterFirst = status.Epoch;
        await work.WaitForAckedAsync(work.Recorder.Acknowledged + 100, "writes with two servers");

        second.Process.Kill();
        var last = test.ServersExcept(first, second).Single();
        status = await test.WaitForAsync(
            "second promotion: the last server takes over alone",
            s => s.Primary == last.Address.ToString() && s.Phase == "Stable" && s.Epoch > epochAfterFirst);
        await work.WaitForAckedAsync(work.Recorder.Acknowledged + 100, "the last server keeps acknowledging alone (min-in-sync 1)");

        // It really is alone: the in-sync set shrank to it, and it still acknowledges.
        status = await test.WaitForAsync("the in-sync set is the last server alone", s => s.InSync.SequenceEqual([last.Address.ToString()]));
        output.WriteLine(status.ToJson());
        await work.WaitForAckedAsync(work.Recorder.Acknowledged + 20, "acknowledged with the in-sync set shrunk to one");
        await work.StopAsync(TestContext.Current.CancellationToken);

        var log = await test.NewClient().ReadAllAsync(TestContext.Current.CancellationToken);
        var result = work.AssertValid(log, output);
        Assert.True(result.Stats.Failed + result.Stats.Indeterminate == 0, $"every write should have been acknowledged through both failovers; errors: {work.Recorder.LastErrors()}");
        var lastAcks = work.Recorder.Acknowledgements.Where(a => a.Server == last.Address.ToString()).ToList();
        Assert.True(lastAcks.Count >= 100, $"the last server acknowledged only {lastAcks.Count} writes");
    }

    [Fact]
    public async Task Last_in_sync_server_down_means_waiting_for_it_never_promoting_a_stale_server()
    {
        await using var test = await TestCluster.StartAsync(serverArgs: ["--min-in-sync", "1"]);
        await using var work = new Workload();
        work.StartWriter(test.NewClient(TimeSpan.FromSeconds(60)), "wait");
        await work.WaitForAckedAsync(50, "writes with three servers");

        // Chain failure down to one server...
        var stale = await test.PrimaryAsync();
        stale.Process.Kill();
        var status = await test.WaitForAsync("promotion after the first kill", s => s.Primary is not null && s.Primary != stale.Address.ToString() && s.Phase == "Stable");
        var second = test.Cluster.Servers.Single(s => s.Address.ToString() == status.Primary);
        await work.WaitForAckedAsync(work.Recorder.Acknowledged + 50, "writes with two servers");
        second.Process.Kill();
        var last = test.ServersExcept(stale, second).Single();
        await test.WaitForAsync("the last server is primary and alone in sync", s => s.Primary == last.Address.ToString() && s.InSync.SequenceEqual([last.Address.ToString()]) && s.Phase == "Stable");
        await work.WaitForAckedAsync(work.Recorder.Acknowledged + 50, "writes acknowledged by the last server alone");

        // ...then it dies too, and a server that missed those writes comes back.
        last.Process.Kill();
        status = await test.WaitForAsync("no candidate once the last in-sync server is dead", s => s.Phase == "NoCandidate");
        var ackedDuringOutage = work.Recorder.Acknowledged;
        stale.Process.Start();
        status = await test.WaitForAsync(
            "the monitor sees the stale server alive and still has no candidate",
            s => TestCluster.Member(s, stale) is { State: "alive" } && s.Phase == "NoCandidate");
        Assert.Equal(last.Address.ToString(), status.Primary);
        Assert.DoesNotContain(stale.Address.ToString(), status.InSync);
        Assert.True(work.Recorder.Acknowledged == ackedDuringOutage, $"{work.Recorder.Acknowledged - ackedDuringOutage} writes were acknowledged while no in-sync server was alive");

        // Availability waits for the last in-sync server; when it returns it leads again and nothing is lost.
        last.Process.Start();
        await test.WaitForAsync("the last in-sync server returns as primary", s => s.Primary == last.Address.ToString() && s.Phase == "Stable" && s.Epoch > status.Epoch);
        await work.WaitForAckedAsync(ackedDuringOutage + 50, "writes after the last in-sync server returned");
        await test.WaitForAsync("the stale server catches up and rejoins the in-sync set", s => s.InSync.Contains(stale.Address.ToString()));
        await work.StopAsync(TestContext.Current.CancellationToken);

        var log = await test.NewClient().ReadAllAsync(TestContext.Current.CancellationToken);
        var result = work.AssertValid(log, output);
        Assert.True(result.Stats.Failed + result.Stats.Indeterminate == 0, $"the call waiting through the outage should have been acknowledged once the server returned; errors: {work.Recorder.LastErrors()}");
    }

    [Fact]
    public async Task Paused_primary_is_replaced_and_never_serves_after_its_lease()
    {
        await using var test = await TestCluster.StartAsync();
        await using var work = new Workload();
        work.StartWriter(test.NewClient(), "p");
        work.StartReader(test.NewClient());
        await work.WaitForAckedAsync(100, "writes before the pause");

        var paused = await test.PrimaryAsync();
        var before = await test.WaitForAsync("status before the pause", s => s.Primary == paused.Address.ToString());

        // A client connection of our own to the primary, opened while it runs, to talk to it while it is frozen.
        var answers = new List<ClientResponse>();
        var transport = new TcpTransport();
        await using var stale = await FrameConnection.ConnectAsync(
            transport,
            paused.Address,
            new FrameConnectionOptions { Role = PeerRole.Client, Incarnation = 7 },
            (_, message, _) =>
            {
                if (message is ClientResponse response)
                {
                    lock (answers)
                    {
                        answers.Add(response);
                    }
                }

                return ValueTask.CompletedTask;
            },
            TestContext.Current.CancellationToken);

        Assert.True(paused.Process.Pause(), "SIGSTOP the primary");
        await Poll.UntilAsync(() => ProcFs.Stopped(paused.Process.Pid), Poll.DefaultTimeout, "the SIGSTOP takes effect on every thread of the primary", () => $"process {paused.Process.Pid} is in state {ProcFs.State(paused.Process.Pid)}", TestContext.Current.CancellationToken);
        var pausedAt = work.Recorder.Now;
        var inFlightAtPause = work.Recorder.InFlight;

        // Frozen with its sockets open: the kernel takes these for it; it sees them only when it wakes.
        const string StaleWrite = "written-to-the-paused-primary";
        Assert.True(stale.Send(new ClientRequest(7, 1, 1, RequestKind.Write, Core.StateMachines.MessageStoreCommands.Append(StaleWrite))));
        Assert.True(stale.Send(new ClientRequest(7, 2, 1, RequestKind.Read, Core.StateMachines.MessageStoreCommands.Count())));

        // Its connection to the monitor stays open and its port accepts: only the slow path can replace it.
        var promoted = await test.WaitForAsync("promotion of another server once the paused primary's lease expired", s => s.Primary is not null && s.Primary != paused.Address.ToString() && s.Epoch > before.Epoch && s.Phase == "Stable");
        var events = await test.Cluster.EventsAsync(TestContext.Current.CancellationToken);
        Assert.Contains(events, e => e.Kind == "Promoted" && e.Epoch == promoted.Epoch);
        var acksWhilePaused = work.Recorder.Acknowledged;
        await work.WaitForAckedAsync(acksWhilePaused + 50, "writes acknowledged by the new primary while the old one is frozen");

        Assert.True(paused.Process.Resume(), "SIGCONT the old primary");
        var resumedAt = work.Recorder.Now;
        await test.WaitForAsync(
            "the old primary steps down and follows as a backup",
            s => TestCluster.Member(s, paused) is { Role: "backup", State: "alive" } m && m.Epoch >= promoted.Epoch && s.Primary != paused.Address.ToString());
        await Poll.UntilAsync(
            () => { lock (answers) { return answers.Count == 2; } },
            Poll.DefaultTimeout,
            "answers from the old primary to the requests sent while it was frozen",
            () => { lock (answers) { return $"expected 2 answers, have {answers.Count}: {string.Join(", ", answers.Select(a => $"{a.Seq}:{a.Status}"))}"; } },
            TestContext.Current.CancellationToken);
        await work.WaitForAckedAsync(work.Recorder.Acknowledged + 50, "writes after the old primary woke up");
        await work.StopAsync(TestContext.Current.CancellationToken);

        // After its lease it served nothing: the write and the read sent to it while frozen were refused.
        lock (answers)
        {
            foreach (var a in answers)
            {
                output.WriteLine($"the old primary answered request {a.Seq}: {a.Status} in epoch {a.Epoch} ({a.PayloadText})");
                Assert.True(a.Status != ResponseStatus.Ok, $"the old primary answered request {a.Seq} with Ok in epoch {a.Epoch} after its lease had expired");
            }
        }

        var log = await test.NewClient().ReadAllAsync(TestContext.Current.CancellationToken);
        var result = work.AssertValid(log, output);
        Assert.True(result.Stats.Failed + result.Stats.Indeterminate == 0, $"every call should have succeeded through the failover; errors: {work.Recorder.LastErrors()}");
        Assert.True(result.Stats.Reads > 0, "the reader read nothing");
        Assert.DoesNotContain(log, m => m.Text == StaleWrite);

        // Nothing was acknowledged in the old epoch once the old primary woke up, and the call the writer had in
        // flight when the primary froze ended acknowledged, by the new primary if it was answered after the pause.
        var acks = work.Recorder.Acknowledgements;
        var staleAcks = acks.Where(a => a.Time > resumedAt && a.Epoch <= before.Epoch).ToList();
        Assert.True(staleAcks.Count == 0, $"acknowledged in the old epoch {before.Epoch} after the old primary woke up: {string.Join(", ", staleAcks.Select(a => $"{a.Value} by {a.Server}"))}");
        foreach (var value in inFlightAtPause)
        {
            var ack = acks.SingleOrDefault(a => a.Value == value);
            Assert.True(ack is not null, $"'{value}', in flight when the primary froze, was never acknowledged: {work.Recorder.LastErrors()}");
            var beforeTheFreeze = ack.Epoch == before.Epoch && ack.Server == paused.Address.ToString();
            var byANewPrimary = ack.Epoch >= promoted.Epoch && ack.Server != paused.Address.ToString();
            Assert.True(beforeTheFreeze || byANewPrimary, $"'{value}', in flight when the primary froze, was acknowledged by {ack.Server} in epoch {ack.Epoch}: neither the old primary in its epoch {before.Epoch} nor a new primary");

            output.WriteLine($"in flight at the pause: '{value}' acknowledged as {ack.Seq} by {ack.Server} in epoch {ack.Epoch}");
        }

        Assert.Contains(acks, a => a.Server == promoted.Primary && a.Epoch == promoted.Epoch && a.Time > pausedAt);
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Understudy.Client;
using Understudy.Core.Client;
using Understudy.Hosting;
using Understudy.Orchestration.Polling;
using Understudy.Protocol;

namespace Understudy.Samples.Tests;

/// <summary>samples/Ledger with three replicas as real processes: its primary is killed under a load of concurrent transfers.</summary>
public sealed class LedgerFailoverTests
{
    private const int Accounts = 8;
    private const long Opening = 1000;
    private const int Workers = 6;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private enum Fate
    {
        Applied,
        Refused,
        NotApplied,
        Unknown,
    }

    private sealed record Transfer(string Id, int From, int To, long Amount);

    [Fact]
    public async Task Killing_the_primary_under_load_neither_creates_nor_loses_money_and_applies_every_acknowledged_transfer_once()
    {
        using var ledger = new LedgerProcesses(replicas: 3);
        ledger.StartAll();
        await using var client = await UnderstudyClient.ConnectAsync(
            new UnderstudyClientOptions { Monitor = ledger.MonitorClient, Retry = new ClientOptions { RequestTimeout = TimeSpan.FromSeconds(20) } },
            Token);
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(Token))
        {
            wait.CancelAfter(Poll.DefaultTimeout);
            await client.WaitForPrimaryAsync(wait.Token);
        }

        for (var a = 0; a < Accounts; a++)
        {
            Assert.Equal("ok", await ExecuteAsync(client, $"open acct{a} {Opening}"));
        }

        // Concurrent transfers, each with its own id, each outcome recorded.
        var fates = new ConcurrentDictionary<Transfer, Fate>();
        var acknowledged = 0L;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(
            async () =>
            {
                var random = new Random(w);
                for (var n = 0; !stop.IsCancellationRequested; n++)
                {
                    var from = random.Next(Accounts);
                    var transfer = new Transfer($"w{w}-{n}", from, (from + 1 + random.Next(Accounts - 1)) % Accounts, 1 + random.Next(300));
                    try
                    {
                        var answer = await ExecuteAsync(client, $"transfer {transfer.Id} acct{transfer.From} acct{transfer.To} {transfer.Amount}");
                        fates[transfer] = answer == "ok" ? Fate.Applied : Fate.Refused;
                        Interlocked.Increment(ref acknowledged);
                    }
                    catch (UnderstudyException e)
                    {
                        fates[transfer] = e.Outcome == OutcomeKind.Failed ? Fate.NotApplied : Fate.Unknown;
                    }
                }
            },
            Token)).ToArray();

        await Poll.UntilAsync(() => Interlocked.Read(ref acknowledged) >= 100, Poll.DefaultTimeout, "transfers before the kill", () => $"expected 100 acknowledged transfers, saw {Interlocked.Read(ref acknowledged)}\n{ledger.Logs()}", Token);
        // Only a backup in the in-sync set may take over (one outside it may lack acknowledged transfers), so the kill
        // waits until both backups are in it; a primary killed sooner leaves no candidate, by design.
        string inSync = "none";
        await Poll.UntilAsync(
            async token =>
            {
                var answer = await client.AdminAsync(AdminCommand.Status, NodeAddress.None, TimeSpan.FromSeconds(5), token);
                var status = answer.Ok ? ClusterStatus.FromJson(answer.Body.Span) : null;
                inSync = status is null ? answer.Message : string.Join(", ", status.InSync);
                return status?.InSync.Count == ledger.Count;
            },
            Poll.DefaultTimeout,
            "every replica in the in-sync set before the kill",
            _ => Task.FromResult($"expected {ledger.Count} in sync, saw: {inSync}\n{ledger.Logs()}"),
            Token);
        var primary = client.Primary;
        var killed = Enumerable.Range(0, ledger.Count).Single(i => ledger.Address(i) == primary);
        ledger.Kill(killed);
        await Poll.UntilAsync(() => client.Primary != primary && !client.Primary.IsNone, Poll.DefaultTimeout, "failover", () => $"expected a primary other than {primary}, the client sees {client.Primary}\n{ledger.Logs()}", Token);
        var atFailover = Interlocked.Read(ref acknowledged);
        await Poll.UntilAsync(() => Interlocked.Read(ref acknowledged) >= atFailover + 100, Poll.DefaultTimeout, "transfers after the failover", () => $"expected 100 more acknowledged transfers after {atFailover}, saw {Interlocked.Read(ref acknowledged)}\n{ledger.Logs()}", Token);
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        // Money is neither created nor lost, and no balance went below zero.
        var balances = Parse(await QueryAsync(client, "balances"));
        Assert.Equal(Accounts * Opening, balances.Values.Sum());
        Assert.All(balances, b => Assert.True(b.Value >= 0, $"{b.Key} is overdrawn: {b.Value}"));

        // Every acknowledged transfer applied exactly once, every refused or surely failed one never.
        var applied = Parse(await QueryAsync(client, "applied"));
        var byId = fates.Keys.ToDictionary(t => t.Id);
        Assert.All(applied, a => Assert.True(byId.ContainsKey(a.Key) && a.Value == 1, $"transfer {a.Key} applied {a.Value} times (issued: {byId.ContainsKey(a.Key)})"));
        foreach (var (transfer, fate) in fates)
        {
            var times = applied.GetValueOrDefault(transfer.Id);
            switch (fate)
            {
                case Fate.Applied:
                    Assert.True(times == 1, $"acknowledged transfer {transfer.Id} applied {times} times");
                    break;
                case Fate.Refused or Fate.NotApplied:
                    Assert.True(times == 0, $"transfer {transfer.Id} ({fate}) applied {times} times");
                    break;
            }
        }

        // Each balance is the opening plus what the applied transfers moved (whatever order they were applied in).
        for (var a = 0; a < Accounts; a++)
        {
            var expected = Opening + applied.Keys.Select(id => byId[id]).Sum(t => t.To == a ? t.Amount : t.From == a ? -t.Amount : 0);
            Assert.True(expected == balances[$"acct{a}"], $"acct{a}: expected {expected} from the applied transfers, holds {balances[$"acct{a}"]}");
        }

        Assert.True(fates.Values.Count(f => f == Fate.Applied) >= 100, "enough transfers were applied for the check to mean something");
    }

    private static async Task<string> ExecuteAsync(UnderstudyClient client, string command) =>
        Encoding.UTF8.GetString((await client.ExecuteAsync(Encoding.UTF8.GetBytes(command), Token)).Payload.Span);

    private static async Task<string> QueryAsync(UnderstudyClient client, string query) =>
        Encoding.UTF8.GetString((await client.QueryAsync(Encoding.UTF8.GetBytes(query), Token)).Payload.Span);

    private static Dictionary<string, long> Parse(string lines) =>
        lines.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => long.Parse(p[1], CultureInfo.InvariantCulture));
}

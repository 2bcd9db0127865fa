using System.Globalization;
using System.Text;
using LedgerSample;
using Microsoft.Extensions.Hosting;
using Understudy.Client;
using Understudy.Protocol;
using Understudy.Server;

// ledger serve PORT MONITOR DATA          one replica: clients and the other replicas on PORT, heartbeats to MONITOR
// ledger open ACCOUNT AMOUNT              a new account with its opening balance
// ledger transfer FROM TO AMOUNT          moves money, all or nothing
// ledger balances                         every account's balance
// Clients find the cluster through the monitor's client address, LEDGER_MONITOR (default 127.0.0.1:9001).
if (args is ["serve", var port, var monitor, var data])
{
    var builder = Host.CreateApplicationBuilder();
    builder.Services.AddUnderstudyServer<Ledger>(options => options with
    {
        Listen = new NodeAddress("127.0.0.1", int.Parse(port, CultureInfo.InvariantCulture)),
        Monitor = NodeAddress.Parse(monitor),
        DataDirectory = data,
    });
    await builder.Build().RunAsync();
    return 0;
}

var monitorAddress = NodeAddress.Parse(Environment.GetEnvironmentVariable("LEDGER_MONITOR") ?? "127.0.0.1:9001");
await using var client = await UnderstudyClient.ConnectAsync(new UnderstudyClientOptions { Monitor = monitorAddress }, CancellationToken.None);
string command;
switch (args)
{
    case ["open", var account, var amount]:
        command = $"open {account} {amount}";
        break;
    case ["transfer", var from, var to, var amount]:
        // The id names the transfer in the ledger's record of applied transfers; the client's own request id is what
        // keeps a retried transfer from being applied twice.
        command = $"transfer {Guid.NewGuid():N} {from} {to} {amount}";
        break;
    case ["balances"]:
        Console.WriteLine(Encoding.UTF8.GetString((await client.QueryAsync(Encoding.UTF8.GetBytes("balances"))).Payload.Span));
        return 0;
    default:
        Console.Error.WriteLine("usage: ledger serve PORT MONITOR DATA | open ACCOUNT AMOUNT | transfer FROM TO AMOUNT | balances");
        return 2;
}

try
{
    var reply = await client.ExecuteAsync(Encoding.UTF8.GetBytes(command));
    Console.WriteLine(Encoding.UTF8.GetString(reply.Payload.Span));
    return 0;
}
catch (UnderstudyException e)
{
    Console.Error.WriteLine($"{e.Message} ({e.Outcome})");
    return 1;
}

namespace Understudy.Transport.Tests;

public class PortProbeTests
{
    [Fact]
    public async Task Closed_port_is_refused()
    {
        var address = await Test.FreeTcpPortAsync();
        Assert.Equal(PortProbeResult.Refused, await PortProbe.ProbeAsync(address, Test.Deadline, Test.Token));
    }

    [Fact]
    public async Task Listening_port_is_accepted_and_the_probe_leaves_no_warning()
    {
        await using var server = await TestServer.StartAsync(new TcpTransport());
        Assert.Equal(PortProbeResult.Accepted, await PortProbe.ProbeAsync(server.Address, Test.Deadline, Test.Token));

        // The monitor probes routinely: a connection that leaves before its Hello is not worth a warning.
        // (It may read as a clean close or as a reset, depending on whether the server's Hello reached the closed socket first.)
        await Test.Eventually(() => server.Logger.Lines.Any(l => l.Id.Id == 2008), "the server sees the probe go");
        Assert.Empty(server.Logger.Warnings);
    }
}

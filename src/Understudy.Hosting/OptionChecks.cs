namespace Understudy.Hosting;

/// <summary>The checks server and monitor options share, each failing with a line that says how to fix it.</summary>
internal static class OptionChecks
{
    public static void HttpPort(int port)
    {
        if (port is < 0 or > 65535)
        {
            throw new ArgumentException($"HTTP port {port} is not a TCP port; pass --http-port (0 turns HTTP off)");
        }
    }

    public static void ClusterKey(ReadOnlyMemory<byte> key)
    {
        if (!key.IsEmpty && key.Length < 16)
        {
            throw new ArgumentException($"the cluster key has {key.Length} bytes; use at least 16 random bytes");
        }
    }
}

/// <summary>Starting a host: if any step fails, what was already opened (ports, files, locks) is released.</summary>
internal static class HostStart
{
    public static async Task<T> OrDisposeAsync<T>(T host, Func<T, Task> start)
        where T : IAsyncDisposable
    {
        try
        {
            await start(host);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }
}

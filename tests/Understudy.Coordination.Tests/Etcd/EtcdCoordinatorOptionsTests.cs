using Understudy.Coordination.Etcd;
using Understudy.Protocol;

namespace Understudy.Coordination.Tests.Etcd;

public sealed class EtcdCoordinatorOptionsTests
{
    private static readonly EtcdCoordinatorOptions Valid = new()
    {
        Endpoints = [new Uri("http://127.0.0.1:2379")],
        Self = new NodeAddress("127.0.0.1", 9000),
        ClusterName = "prod",
    };

    [Fact]
    public void The_defaults_are_valid_and_the_prefix_names_the_cluster()
    {
        Valid.Validate();
        Assert.Equal("/understudy/prod/", Valid.EffectivePrefix);
        Assert.Equal("/other/", (Valid with { KeyPrefix = "/other/" }).EffectivePrefix);
        Assert.Equal(TimeSpan.FromSeconds(1), Valid.EffectiveRequestTimeout);
    }

    [Fact]
    public void Out_of_range_options_are_refused_at_start()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => (Valid with { TimeToLive = TimeSpan.FromMilliseconds(1500) }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (Valid with { TimeToLive = TimeSpan.Zero }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (Valid with { MaxClockDrift = TimeSpan.FromSeconds(1) }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (Valid with { MaxClockDrift = TimeSpan.FromMilliseconds(-1) }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (Valid with { RequestTimeout = TimeSpan.FromSeconds(2) }).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => (Valid with { RequestTimeout = TimeSpan.Zero }).Validate());
        (Valid with { TimeToLive = TimeSpan.FromSeconds(1) }).Validate();
        Assert.Throws<ArgumentException>(() => (Valid with { Endpoints = [] }).Validate());
        Assert.Throws<ArgumentException>(() => (Valid with { Self = NodeAddress.None }).Validate());
        Assert.Throws<ArgumentException>(() => (Valid with { KeyPrefix = "/no-slash" }).Validate());
        Assert.Throws<ArgumentException>(() => (Valid with { ClusterName = "a/b" }).Validate());
        Assert.Throws<ArgumentException>(() => new EtcdCoordinator(Valid with { Endpoints = [] }));
    }

    [Fact]
    public void Endpoints_parse_from_the_command_line_form()
    {
        var endpoints = EtcdCoordinatorOptions.ParseEndpoints("http://127.0.0.1:2379, http://10.0.0.2:2379");
        Assert.Equal([new Uri("http://127.0.0.1:2379"), new Uri("http://10.0.0.2:2379")], endpoints);
        Assert.Throws<FormatException>(() => EtcdCoordinatorOptions.ParseEndpoints("ftp://127.0.0.1:2379"));
        Assert.Throws<FormatException>(() => EtcdCoordinatorOptions.ParseEndpoints("not a url"));
    }
}

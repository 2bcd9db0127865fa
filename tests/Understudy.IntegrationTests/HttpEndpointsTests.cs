using Microsoft.Extensions.Configuration;
using Understudy.Hosting;

namespace Understudy.IntegrationTests;

/// <summary>The HTTP endpoints' web host watches no files: a watcher on the working directory sees every log write below it.</summary>
public sealed class HttpEndpointsTests
{
    [Fact]
    public async Task The_web_host_reloads_no_configuration_file_and_is_rooted_in_the_application_folder()
    {
        await using var app = HttpEndpoints.Build("127.0.0.1", 0, logs: null);

        var watched = ((IConfigurationRoot)app.Configuration).Providers
            .OfType<FileConfigurationProvider>()
            .Where(p => p.Source.ReloadOnChange)
            .Select(p => p.Source.Path)
            .ToList();
        Assert.True(watched.Count == 0, $"expected no configuration file reloaded on change, got: {string.Join(", ", watched)}");
        Assert.Equal(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory), Path.TrimEndingDirectorySeparator(app.Environment.ContentRootPath));
    }
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Understudy.Client;

/// <summary>
/// Registers one <see cref="UnderstudyClient"/> for the application: <c>services.AddUnderstudyClient(new UnderstudyClientOptions { Monitors = [...] })</c>.
/// The client is a singleton made the first time it is resolved (it then connects to a monitor in the background and
/// follows the primary on its own; calls made before it knows one wait for it within their deadline) and disposed with
/// the container. Without <see cref="UnderstudyClientOptions.Loggers"/>, it logs through the container's logger factory.
/// </summary>
public static class UnderstudyClientServiceCollectionExtensions
{
    public static IServiceCollection AddUnderstudyClient(this IServiceCollection services, UnderstudyClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return services.AddUnderstudyClient(_ => options);
    }

    /// <summary>Registers the client with options made from the container when it is first resolved.</summary>
    public static IServiceCollection AddUnderstudyClient(this IServiceCollection services, Func<IServiceProvider, UnderstudyClientOptions> options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.AddSingleton(provider =>
        {
            var chosen = options(provider);
            if (chosen.Loggers is NullLoggerFactory && provider.GetService<ILoggerFactory>() is { } loggers)
            {
                chosen = chosen with { Loggers = loggers };
            }

            return new UnderstudyClient(chosen);
        });
        return services;
    }
}

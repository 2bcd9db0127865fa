using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Understudy.Core.StateMachines;
using Understudy.Hosting;

namespace Understudy.Server;

/// <summary>
/// Hosts an Understudy server in a generic-host application:
/// <code>
/// builder.Services.AddUnderstudyServer&lt;Ledger&gt;(options => options with { Listen = new("127.0.0.1", 8090), DataDirectory = "data/8090" });
/// </code>
/// registers <see cref="UnderstudyServer"/> (resolve it to see the running server) as a hosted service that starts with
/// the application and stops with it. Every server of a cluster must run the same state machine.
/// </summary>
public static class UnderstudyServerServiceCollectionExtensions
{
    /// <summary>The configuration section configuration-reading AddUnderstudyServer overload is typically given (builder.Configuration.GetSection(ConfigurationSection)).</summary>
    public const string ConfigurationSection = "Understudy:Server";

    /// <summary>
    /// A server replicating <typeparamref name="TStateMachine"/>, made by the container (so its constructor may take
    /// services) each time the server starts. <paramref name="configure"/> turns the defaults into this server's options;
    /// its <see cref="ServerHostOptions.StateMachine"/> is replaced by <typeparamref name="TStateMachine"/>.
    /// </summary>
    public static IServiceCollection AddUnderstudyServer<TStateMachine>(this IServiceCollection services, Func<ServerHostOptions, ServerHostOptions> configure)
        where TStateMachine : class, IStateMachine
    {
        ArgumentNullException.ThrowIfNull(configure);
        return services.AddUnderstudyServer(provider => configure(new ServerHostOptions()) with
        {
            StateMachine = () => ActivatorUtilities.CreateInstance<TStateMachine>(provider),
        });
    }

    /// <summary>
    /// A server replicating <typeparamref name="TStateMachine"/>, with its options read from
    /// <paramref name="configuration"/> (see <see cref="ServerConfiguration"/>; typically the section
    /// <see cref="ConfigurationSection"/>) and then changed by <paramref name="configure"/>, if given.
    /// </summary>
    public static IServiceCollection AddUnderstudyServer<TStateMachine>(this IServiceCollection services, IConfiguration configuration, Func<ServerHostOptions, ServerHostOptions>? configure = null)
        where TStateMachine : class, IStateMachine
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return services.AddUnderstudyServer<TStateMachine>(defaults =>
        {
            var read = ServerConfiguration.Read(configuration, defaults);
            return configure is null ? read : configure(read);
        });
    }

    /// <summary>
    /// A server with options made by <paramref name="options"/> when the container first needs it, state machine
    /// included (<see cref="ServerHostOptions.StateMachine"/>; null keeps the message store).
    /// </summary>
    public static IServiceCollection AddUnderstudyServer(this IServiceCollection services, Func<IServiceProvider, ServerHostOptions> options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        services.AddSingleton(provider => new UnderstudyServer(
            options(provider),
            provider.GetService<ILoggerFactory>() ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance,
            provider.GetService<IHostApplicationLifetime>()));
        services.AddHostedService(provider => provider.GetRequiredService<UnderstudyServer>());
        return services;
    }
}

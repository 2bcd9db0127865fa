using Microsoft.Playwright;
using Understudy.IntegrationTests;

namespace Understudy.OperatorTests;

/// <summary>The monitor's dashboard in a real headless Chromium: it follows a failover live, without a reload.</summary>
public class DashboardTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";

    /// <summary>Flags that keep Chromium quiet on a machine without internet (no update checks, sync, QUIC...).</summary>
    private static readonly string[] ChromiumArgs =
    [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    ];

    [Fact]
    public async Task Dashboard_shows_the_new_primary_and_a_failover_entry_without_a_reload()
    {
        if (!File.Exists(Chromium))
        {
            Assert.Skip("Chromium is not installed (apt-get install chromium); the dashboard test needs a real browser");
        }

        var ct = TestContext.Current.CancellationToken;
        await using var test = await TestCluster.StartAsync();
        var writer = test.NewClient();
        using var load = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var writes = LoadBalancerEndpointTests.WriteUntilCancelledAsync(writer, load.Token);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ChromiumArgs,
            Timeout = 60_000,
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1440, Height = 1000 } });
        var consoleErrors = new List<string>();
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
            {
                consoleErrors.Add(m.Text);
            }
        };
        page.PageError += (_, e) => consoleErrors.Add(e);

        var url = $"http://127.0.0.1:{test.Cluster.Options.HttpPort}/";
        await page.GotoAsync(url);

        // A marker that only survives if the page is never reloaded.
        await page.EvaluateAsync("() => { window.__understudyNoReload = 'still here'; }");

        var primaryShown = page.GetByTestId("primary");
        var before = await Wait.ForAsync("dashboard: a primary shown after load", () => primaryShown.TextContentAsync(), t => t is { Length: > 1 } && t.StartsWith(':'));
        var primary = await test.PrimaryAsync();
        Assert.Equal($":{primary.Address.Port}", before);
        var epochBefore = long.Parse((await page.GetByTestId("epoch").TextContentAsync())!, System.Globalization.CultureInfo.InvariantCulture);
        var failoversBefore = await page.GetByTestId("failover").CountAsync();

        // Traffic on the sparkline before the failure.
        await Wait.ForAsync("dashboard: messages per second shown", () => page.Locator("#rate").TextContentAsync(), t => t is { Length: > 0 } && t != "0");

        primary.Process.Kill();
        var after = await Wait.ForAsync("dashboard: another primary shown without a reload", () => primaryShown.TextContentAsync(), t => t is { Length: > 1 } && t.StartsWith(':') && t != before);
        var status = await test.WaitForAsync("monitor: the new primary", s => s.Primary is not null && s.Primary != primary.Address.ToString());
        Assert.EndsWith(after!, status.Primary);
        await Wait.ForAsync(
            "dashboard: a new failover entry naming the new primary",
            async () => (Count: await page.GetByTestId("failover").CountAsync(), To: await page.GetByTestId("failover-to").First.TextContentAsync()),
            v => v.Count > failoversBefore && v.To == after);
        var epochAfter = long.Parse((await page.GetByTestId("epoch").TextContentAsync())!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(epochAfter > epochBefore, $"epoch shown went from {epochBefore} to {epochAfter}");
        Assert.Equal("still here", await page.EvaluateAsync<string>("() => window.__understudyNoReload"));
        output.WriteLine($"dashboard: primary {before} -> {after}, epoch {epochBefore} -> {epochAfter}, without a reload");

        // Bring the killed server back so the picture shows a whole cluster after one failover, then keep it.
        primary.Process.Start();
        await test.WaitHealthyAsync("dashboard: the killed server back in sync");
        await Wait.ForAsync("dashboard: three servers shown in sync", () => page.Locator("#members tbody td.yes").CountAsync(), n => n == 3);
        await Wait.ForAsync("dashboard: traffic shown after the failover", () => page.Locator("#rate").TextContentAsync(), t => t is { Length: > 0 } && t != "0");

        // Enough throughput history on the chart to show the dip at the failover (the page samples ~4 times a second).
        await Wait.ForAsync("dashboard: throughput history drawn", () => page.EvaluateAsync<int>("() => state.rates.length"), n => n >= 40, TimeSpan.FromSeconds(60));
        await Wait.ForAsync(
            "dashboard: every server shown alive and in sync for the screenshot",
            async () => (Alive: await page.Locator("#members tbody td.role-primary, #members tbody td.role-backup").CountAsync(), InSync: await page.Locator("#members tbody td.yes").CountAsync()),
            v => v.Alive == 3 && v.InSync == 3);
        var shot = Path.Combine(Artifacts.Folder, "dashboard.png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
        output.WriteLine($"screenshot: {shot}");
        if (Environment.GetEnvironmentVariable("UNDERSTUDY_UPDATE_DOCS_SCREENSHOT") == "1" && Artifacts.RepositoryRoot() is { } root)
        {
            Directory.CreateDirectory(Path.Combine(root, "docs"));
            File.Copy(shot, Path.Combine(root, "docs", "dashboard.png"), overwrite: true);
        }

        await load.CancelAsync();
        await writes;
        Assert.True(consoleErrors.Count == 0, $"the page logged errors: {string.Join(" | ", consoleErrors)}");
    }
}

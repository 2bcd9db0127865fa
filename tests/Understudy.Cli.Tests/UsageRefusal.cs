namespace Understudy.Cli.Tests;

/// <summary>
/// What every refused command line must do, whatever the verb: one `error:` line in our words, then the verb's usage
/// line, exit code 2, no stack trace or .NET type name, nothing started (no process left, the ports it was given
/// still free) and nothing written (the data folder is not created). Shared by <see cref="UsageErrorTests"/> and
/// <see cref="MonitorGroupUsageTests"/> so the contract is checked the same way for both.
/// </summary>
internal static class UsageRefusal
{
    /// <summary>Runs <paramref name="commandLine"/> and checks the refusal; <paramref name="usagePrefix"/> is how the usage line starts.</summary>
    public static async Task AssertRefusedAsync(string what, string commandLine, string usagePrefix)
    {
        using var workspace = new Workspace();
        var ports = new Dictionary<string, int>();
        var args = workspace.Expand(commandLine, ports);
        var before = workspace.Entries();

        var result = await Cli.RunAsync(workspace.Root, args, TimeSpan.FromSeconds(20));

        var why = $"{what}: understudy {commandLine}\n{result.Describe()}";
        Assert.True(result.ExitCode == 2, $"expected the usage exit code 2. {why}");
        Assert.True(result.Errors.Count == 2, $"expected one error line and one usage line. {why}");
        Assert.StartsWith("error: ", result.Errors[0], StringComparison.Ordinal);
        Assert.StartsWith(usagePrefix, result.Errors[1], StringComparison.Ordinal);
        Assert.Empty(result.Output);
        var all = string.Join('\n', result.Errors);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", all, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", all, StringComparison.Ordinal);
        Assert.DoesNotContain("Nullable", all, StringComparison.Ordinal);

        // A mistake is refused at once, before anything starts or is written.
        Assert.True(result.Took < TimeSpan.FromSeconds(10), $"a usage error should be reported at once. {why}");
        Assert.False(Directory.Exists(workspace.Data), $"the data folder was created. {why}");
        Assert.Equal(before, workspace.Entries());
        Assert.Empty(Cli.ProcessesMentioning(workspace.Root));
        foreach (var (name, port) in ports)
        {
            Assert.True(Cli.NothingListensOn(port), $"{name} ({port}) is listened on after the refusal. {why}");
        }
    }
}

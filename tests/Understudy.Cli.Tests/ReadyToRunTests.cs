using System.Reflection.PortableExecutable;

namespace Understudy.Cli.Tests;

/// <summary>
/// The `./understudy` script publishes the CLI with ReadyToRun images (precompiled code), so a server started fresh
/// runs its hot paths precompiled instead of spending its first seconds in the JIT (docs/ARCHITECTURE.md, "A fresh
/// server starts precompiled"). The tests' own copy of the CLI is a plain build, which keeps the suite's build short.
/// </summary>
public sealed class ReadyToRunTests
{
    [Fact]
    public void The_check_tells_a_precompiled_image_from_a_plain_one()
    {
        // The shared framework ships precompiled; the CLI these tests copy into cli/ is a plain `dotnet build`.
        var framework = typeof(object).Assembly.Location;
        Assert.True(IsReadyToRun(framework), $"{framework}: expected a ReadyToRun image, found none");
        Assert.False(IsReadyToRun(Path.Combine(AppContext.BaseDirectory, "cli", "understudy.dll")), "the tests' plain copy of the CLI reads as ReadyToRun");
    }

    [Fact]
    public void The_script_built_CLI_is_precompiled()
    {
        var root = RepositoryRoot();
        var output = Path.Combine(root, "artifacts", "cli");
        var stamp = Path.Combine(output, ".built");
        if (!File.Exists(stamp) || File.GetLastWriteTimeUtc(stamp) < File.GetLastWriteTimeUtc(Path.Combine(root, "understudy")))
        {
            Assert.Skip($"{output} is not built by this version of the script: run ./understudy --help once, then this test");
        }

        // Ours and the packages': every assembly the server's work runs through.
        var plain = Directory.EnumerateFiles(output, "*.dll")
            .Where(f => !IsNative(f) && !IsReadyToRun(f))
            .Select(Path.GetFileName)
            .ToList();
        Assert.True(plain.Count == 0, $"after the script's build, expected every assembly in {output} precompiled; plain: {string.Join(", ", plain)}");
    }

    /// <summary>True when the file is a managed image with a ReadyToRun header ("RTR" at its managed native header).</summary>
    private static bool IsReadyToRun(string path)
    {
        using var stream = File.OpenRead(path);
        using var reader = new PEReader(stream);
        var cor = reader.PEHeaders.CorHeader;
        if (cor is null || cor.ManagedNativeHeaderDirectory.Size < 4)
        {
            return false;
        }

        var header = reader.GetSectionData(cor.ManagedNativeHeaderDirectory.RelativeVirtualAddress).GetContent(0, 4);
        return BitConverter.ToUInt32([.. header]) == 0x00525452; // READYTORUN_SIGNATURE, 'RTR'
    }

    private static bool IsNative(string path)
    {
        using var stream = File.OpenRead(path);
        using var reader = new PEReader(stream);
        return reader.PEHeaders.CorHeader is null;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Understudy.slnx")) && File.Exists(Path.Combine(dir.FullName, "understudy")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no repository root (Understudy.slnx beside the understudy script) above {AppContext.BaseDirectory}");
    }
}

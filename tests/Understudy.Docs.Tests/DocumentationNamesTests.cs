using System.Reflection;
using Understudy.Checking;
using Understudy.Client;
using Understudy.Coordination;
using Understudy.Core.Replication;
using Understudy.Hosting;
using Understudy.Orchestration.Clusters;
using Understudy.Protocol;
using Understudy.Simulation;
using Understudy.Storage;
using Understudy.Transport;

namespace Understudy.Docs.Tests;

/// <summary>
/// The README and docs/ARCHITECTURE.md name types, members, fields and source files. Each name must exist, so a
/// rename or a move that forgets the docs fails here instead of misleading the next reader.
/// </summary>
public class DocumentationNamesTests
{
    private static readonly Assembly[] Libraries =
    [
        typeof(IMessage).Assembly,
        typeof(ServerNode).Assembly,
        typeof(DurableLog).Assembly,
        typeof(ITransport).Assembly,
        typeof(UnderstudyClient).Assembly,
        typeof(ServerHost).Assembly,
        typeof(IMonitorCoordinator).Assembly,
        typeof(Simulator).Assembly,
        typeof(HistoryChecker).Assembly,
        typeof(LocalCluster).Assembly,
        typeof(Understudy.Server.UnderstudyServer).Assembly,
    ];

    private static readonly CodeIndex Index = new(Libraries);

    public static TheoryData<string> Documents() => ["README.md", "docs/ARCHITECTURE.md", "docs/STATE-MACHINES.md"];

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_type_and_member_the_document_names_exists(string document)
    {
        var text = File.ReadAllText(Path.Combine(RepositoryRoot, document));
        var missing = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var span in CodeNames.Spans(text))
        {
            if (CodeNames.IsIdentifier(span, out var name, out var argument) && !Index.Exists(name, argument))
            {
                missing.Add($"`{span}` (no such type or member)");
            }
            else if (CodeNames.IsField(span) && !Index.FieldExists(span))
            {
                missing.Add($"`{span}` (no such field)");
            }
            else if (CodeNames.IsSourcePath(span) && !SourcePathExists(span))
            {
                missing.Add($"`{span}` (no such file or folder)");
            }
        }

        foreach (var name in CodeNames.CSharpUses(text))
        {
            if (!Index.Exists(name, null))
            {
                missing.Add($"{name} in a C# example (no such type or member)");
            }
        }

        Assert.True(missing.Count == 0, $"{document} names code that does not exist:\n  " + string.Join("\n  ", missing));
    }

    [Fact]
    public void The_check_catches_a_name_that_does_not_exist()
    {
        Assert.False(Index.Exists("ServerNode.NoSuchMethod", null));
        Assert.False(Index.Exists("NoSuchTypeAnywhere", null));
        Assert.False(Index.FieldExists("_noSuchField"));
        Assert.False(SourcePathExists("Replication/NoSuchFile.cs"));
        Assert.True(Index.Exists("ServerNode", null));
        Assert.True(Index.Exists("ServerNode.Handle", "Replicate"));
        Assert.False(Index.Exists("ServerNode.Handle", "NoSuchMessage"));
    }

    /// <summary>`src/...` from the repository root, or `Folder/File.cs` inside one of the src projects.</summary>
    private static bool SourcePathExists(string path)
    {
        var trimmed = path.TrimEnd('/');
        if (File.Exists(Path.Combine(RepositoryRoot, trimmed)) || Directory.Exists(Path.Combine(RepositoryRoot, trimmed)))
        {
            return true;
        }

        return Directory.GetDirectories(Path.Combine(RepositoryRoot, "src"))
            .Any(project => File.Exists(Path.Combine(project, trimmed)) || Directory.Exists(Path.Combine(project, trimmed)));
    }

    private static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Understudy.slnx")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"no Understudy.slnx above {AppContext.BaseDirectory}");
        }
    }
}

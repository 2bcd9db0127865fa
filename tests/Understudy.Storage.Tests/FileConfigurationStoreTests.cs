using System.Text.Json;
using Understudy.Protocol;

namespace Understudy.Storage.Tests;

public sealed class FileConfigurationStoreTests : IDisposable
{
    private static readonly NodeAddress A = new("127.0.0.1", 8090);
    private static readonly NodeAddress B = new("127.0.0.1", 8089);
    private static readonly NodeAddress V6 = new("::1", 8088);

    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static ClusterConfig Config(long epoch, long version) => ClusterConfig.Initial with
    {
        Epoch = epoch,
        Version = version,
        Primary = A,
        InSync = [B, A],
        Members = [new MemberInfo(V6, 8088), new MemberInfo(B, 8089), new MemberInfo(A, 8090)],
    };

    [Fact]
    public async Task Load_without_a_file_returns_the_initial_configuration()
    {
        using var store = FileConfigurationStore.Open(_folder.Path);
        var config = await store.LoadAsync(Ct);
        Assert.Same(ClusterConfig.Initial, config);
        Assert.False(File.Exists(_folder.File(FileConfigurationStore.FileName)));
    }

    [Fact]
    public async Task Committed_configuration_survives_reopen()
    {
        var next = Config(epoch: 1, version: 1);
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            IConfigurationStore asInterface = store;
            var result = await asInterface.CompareAndSetAsync(0, next, Ct);
            Assert.True(result.Committed);
            Assert.True(result.Current.SameAs(next));
        }

        using var reopened = FileConfigurationStore.Open(_folder.Path);
        Assert.True((await reopened.LoadAsync(Ct)).SameAs(next));
    }

    [Fact]
    public async Task Stale_version_is_refused_and_the_stored_one_returned()
    {
        using var store = FileConfigurationStore.Open(_folder.Path);
        var first = Config(epoch: 1, version: 1);
        Assert.True((await store.CompareAndSetAsync(0, first, Ct)).Committed);

        var stale = await store.CompareAndSetAsync(0, Config(epoch: 2, version: 1), Ct);
        Assert.False(stale.Committed);
        Assert.True(stale.Current.SameAs(first));

        var second = first.WithInSync([A]);
        Assert.True((await store.CompareAndSetAsync(1, second, Ct)).Committed);
        Assert.True((await store.LoadAsync(Ct)).SameAs(second));
    }

    [Fact]
    public async Task Going_back_to_an_older_epoch_is_refused()
    {
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            await store.CompareAndSetAsync(0, Config(epoch: 5, version: 1), Ct);
        }

        // A restarted monitor starts from the stored epoch and cannot write a lower one.
        using var reopened = FileConfigurationStore.Open(_folder.Path);
        Assert.Equal(5, (await reopened.LoadAsync(Ct)).Epoch);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => reopened.CompareAndSetAsync(1, Config(epoch: 4, version: 2), Ct).AsTask());
        Assert.Contains("never goes back", e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ArgumentException>(() => reopened.CompareAndSetAsync(1, Config(epoch: 5, version: 1), Ct).AsTask());
        Assert.Equal(5, (await reopened.LoadAsync(Ct)).Epoch);
    }

    [Fact]
    public async Task File_is_readable_json()
    {
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            await store.CompareAndSetAsync(0, Config(epoch: 3, version: 7), Ct);
        }

        var text = await File.ReadAllTextAsync(_folder.File(FileConfigurationStore.FileName), Ct);
        using var json = JsonDocument.Parse(text);
        Assert.Equal(3, json.RootElement.GetProperty("epoch").GetInt64());
        Assert.Equal("127.0.0.1:8090", json.RootElement.GetProperty("primary").GetString());
        Assert.StartsWith("crc32c:", json.RootElement.GetProperty("checksum").GetString(), StringComparison.Ordinal);
        Assert.Contains('\n', text);
    }

    [Theory]
    [InlineData("edit")]
    [InlineData("cut")]
    [InlineData("empty")]
    [InlineData("unknown field")]
    public async Task Corrupt_file_is_refused_with_a_readable_error(string damage)
    {
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            await store.CompareAndSetAsync(0, Config(epoch: 12, version: 30), Ct);
        }

        var path = _folder.File(FileConfigurationStore.FileName);
        var text = await File.ReadAllTextAsync(path, Ct);
        var damaged = damage switch
        {
            "edit" => text.Replace("\"epoch\": 12", "\"epoch\": 2", StringComparison.Ordinal),
            "cut" => text[..(text.Length / 2)],
            "empty" => string.Empty,
            _ => text.Replace("\"format\": 1,", "\"format\": 1, \"epohc\": 13,", StringComparison.Ordinal),
        };
        Assert.NotEqual(text, damaged);
        await File.WriteAllTextAsync(path, damaged, Ct);

        var e = Assert.Throws<StorageException>(() => FileConfigurationStore.Open(_folder.Path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("is damaged", e.Message, StringComparison.Ordinal);
        Assert.Contains("epoch 0", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        if (damage == "edit")
        {
            Assert.Contains("checksum", e.Message, StringComparison.Ordinal);
        }

        // The refusal does not hold the folder.
        Assert.Throws<StorageException>(() => FileConfigurationStore.Open(_folder.Path));
    }

    [Fact]
    public async Task Leftover_temp_file_from_a_crash_is_ignored()
    {
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            await store.CompareAndSetAsync(0, Config(epoch: 1, version: 1), Ct);
        }

        await File.WriteAllTextAsync(_folder.File(FileConfigurationStore.FileName + ".tmp"), "{ \"epoch\": 99", Ct);
        using var reopened = FileConfigurationStore.Open(_folder.Path);
        Assert.Equal(1, (await reopened.LoadAsync(Ct)).Version);
        Assert.False(File.Exists(_folder.File(FileConfigurationStore.FileName + ".tmp")));
    }

    [Fact]
    public void Second_monitor_on_the_same_folder_is_refused()
    {
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            var e = Assert.Throws<StorageException>(() => FileConfigurationStore.Open(_folder.Path));
            Assert.Contains("in use by another monitor", e.Message, StringComparison.Ordinal);
            Assert.Contains(_folder.Path, e.Message, StringComparison.Ordinal);
        }

        using var again = FileConfigurationStore.Open(_folder.Path);
    }

    [Fact]
    public async Task Every_field_round_trips_including_no_primary()
    {
        var config = Config(epoch: 2, version: 3) with { Primary = NodeAddress.None, InSync = [] };
        using (var store = FileConfigurationStore.Open(_folder.Path))
        {
            await store.CompareAndSetAsync(0, config, Ct);
        }

        using var reopened = FileConfigurationStore.Open(_folder.Path);
        var loaded = await reopened.LoadAsync(Ct);
        Assert.True(loaded.SameAs(config), $"{loaded} != {config}");
    }

    [Fact]
    public async Task Disposed_store_refuses_calls()
    {
        var store = FileConfigurationStore.Open(_folder.Path);
        store.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.LoadAsync(Ct).AsTask());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.CompareAndSetAsync(0, Config(1, 1), Ct).AsTask());
    }
}

namespace Understudy.Storage.Tests;

public sealed class EpochAndChecksumTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private DurableLog Open() => DurableLog.Open(_folder.Path, new DurableLogOptions());

    [Fact]
    public void Crc32C_matches_the_standard_check_value()
    {
        // The catalogued check value of CRC-32C (Castagnoli) for "123456789".
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(Crc32C.Compute("123456789"u8), Crc32C.Compute("1234"u8, "56789"u8));
        Assert.Equal(0u, Crc32C.Compute([]));
    }

    [Fact]
    public async Task Saved_epoch_survives_reopen_and_never_goes_back()
    {
        await using (var log = Open())
        {
            Assert.Equal(0, log.RecoveredEpoch);
            log.SaveEpoch(5);
            log.SaveEpoch(3);
        }

        Assert.Equal("epoch=5\n", (await File.ReadAllLinesAsync(_folder.File("epoch"), TestContext.Current.CancellationToken))[0] + "\n");
        await using (var log = Open())
        {
            Assert.Equal(5, log.RecoveredEpoch);
            log.SaveEpoch(6);
        }

        await using var again = Open();
        Assert.Equal(6, again.RecoveredEpoch);
    }

    [Fact]
    public async Task Epoch_file_is_replaced_atomically_and_a_leftover_temp_file_is_ignored()
    {
        await using (var log = Open())
        {
            log.SaveEpoch(4);
        }

        // A crash after writing the temporary file, before the rename: the old epoch stands.
        await File.WriteAllTextAsync(_folder.File("epoch.tmp"), "epoch=9\ncrc", TestContext.Current.CancellationToken);
        await using (var log = Open())
        {
            Assert.Equal(4, log.RecoveredEpoch);
        }

        Assert.False(File.Exists(_folder.File("epoch.tmp")));
        Assert.Equal(["LOCK", "epoch"], Directory.GetFiles(_folder.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Damaged_epoch_file_is_refused()
    {
        await using (var log = Open())
        {
            log.SaveEpoch(12);
        }

        var text = await File.ReadAllTextAsync(_folder.File("epoch"), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(_folder.File("epoch"), text.Replace("epoch=12", "epoch=2", StringComparison.Ordinal), TestContext.Current.CancellationToken);

        var e = Assert.Throws<StorageException>(() => Open());
        Assert.Contains("Epoch file", e.Message, StringComparison.Ordinal);
        Assert.Contains("checksum", e.Message, StringComparison.Ordinal);
    }
}

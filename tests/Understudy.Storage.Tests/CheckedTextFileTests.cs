using System.Text;

namespace Understudy.Storage.Tests;

/// <summary>
/// The checked key=value text file that the epoch and log-start files are written in: it reads back what was
/// written, and refuses a torn, changed or malformed file with a line that says what is wrong with it.
/// </summary>
public sealed class CheckedTextFileTests : IDisposable
{
    private const string Name = "numbers";
    private static readonly string[] Keys = ["first", "second"];

    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private long[]? Read(Func<long[], string?>? validate = null) =>
        CheckedTextFile.Read(_folder.File(Name), Keys, "Numbers file", "restore it.", validate);

    private string WrittenText()
    {
        CheckedTextFile.Write(_folder.Path, Name, (Keys[0], 7), (Keys[1], 1234567890123));
        return File.ReadAllText(_folder.File(Name));
    }

    [Fact]
    public void Reads_back_what_it_wrote_and_an_operator_can_read_it()
    {
        var text = WrittenText();

        Assert.StartsWith("first=7\nsecond=1234567890123\ncrc32c=", text, StringComparison.Ordinal);
        Assert.Equal([7L, 1234567890123L], Read()!);
    }

    [Fact]
    public void A_missing_file_reads_as_null()
    {
        Assert.Null(Read());
    }

    [Fact]
    public void A_torn_file_is_refused_with_the_lines_it_expected()
    {
        var text = WrittenText();
        File.WriteAllText(_folder.File(Name), text[..(text.Length / 2)]);

        var e = Assert.Throws<StorageException>(() => Read());
        Assert.Contains("Numbers file", e.Message, StringComparison.Ordinal);
        Assert.Contains("is damaged (expected the lines first=N, second=N and crc32c=X): restore it.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_changed_number_is_refused_by_its_checksum()
    {
        var text = WrittenText();
        File.WriteAllText(_folder.File(Name), text.Replace("first=7", "first=8", StringComparison.Ordinal));

        var e = Assert.Throws<StorageException>(() => Read());
        Assert.Contains("checksum does not match", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("second=1\nfirst=2\n", "expected the lines")]
    [InlineData("first=1\nsecond=2\nthird=3\n", "expected the lines")]
    [InlineData("first=-1\nsecond=2\n", "'first=-1' is not a non-negative number")]
    [InlineData("first=x\nsecond=2\n", "'first=x' is not a non-negative number")]
    public void A_malformed_body_is_refused_even_with_a_matching_checksum(string body, string problem)
    {
        var crc = Crc32C.Compute(Encoding.UTF8.GetBytes(body));

        Assert.Contains(problem, CheckedTextFile.Parse(Encoding.UTF8.GetBytes($"{body}crc32c={crc:x8}\n"), Keys, out _), StringComparison.Ordinal);
    }

    [Fact]
    public void Bytes_that_are_not_utf8_are_refused()
    {
        Assert.Equal("not UTF-8 text", CheckedTextFile.Parse([0x66, 0xff, 0x0a], Keys, out _));
    }

    [Fact]
    public void A_whole_file_the_caller_finds_wrong_is_refused_with_its_reason()
    {
        WrittenText();

        var e = Assert.Throws<StorageException>(() => Read(numbers => numbers[0] > numbers[1] ? null : "first must exceed second"));
        Assert.Contains("is damaged (first must exceed second)", e.Message, StringComparison.Ordinal);
    }
}

namespace Understudy.Protocol;

/// <summary>
/// Copies of the commands of many entries decoded together, held in a few shared arrays: each command is a slice of
/// one. Pieces stay under the large object heap's threshold (85,000 bytes), so they are collected young like any
/// small object, and a piece is only as large as the commands still expected, so a frame of one entry allocates no
/// more than before. A command larger than a piece gets an array of its own.
/// </summary>
internal struct CommandPieces(int expectedBytes)
{
    /// <summary>The largest piece: 64 KiB, under the large object heap's threshold.</summary>
    public const int PieceBytes = 64 * 1024;

    private int _expected = Math.Max(0, expectedBytes);
    private byte[] _piece = [];
    private int _used;

    /// <summary>A copy of <paramref name="command"/> that shares its array with the commands copied before it.</summary>
    public ReadOnlyMemory<byte> Copy(ReadOnlySpan<byte> command)
    {
        if (command.Length == 0)
        {
            return ReadOnlyMemory<byte>.Empty;
        }

        if (command.Length > _piece.Length - _used)
        {
            var size = Math.Min(PieceBytes, Math.Max(_expected, command.Length));
            if (command.Length > size)
            {
                _expected -= command.Length;
                return command.ToArray();
            }

            _piece = GC.AllocateUninitializedArray<byte>(size);
            _used = 0;
        }

        command.CopyTo(_piece.AsSpan(_used));
        var copy = new ReadOnlyMemory<byte>(_piece, _used, command.Length);
        _used += command.Length;
        _expected -= command.Length;
        return copy;
    }
}

using System.Buffers;
using BenchmarkDotNet.Attributes;
using Understudy.Protocol;

namespace Understudy.Benchmarks;

/// <summary>
/// Frame encoding and decoding: a replication frame of 1, 64 or 1024 entries (64-byte messages, as in the
/// throughput benchmark), and a client request. Encode writes into a reused buffer, as the connection's send
/// queue does; decode parses a frame body, as the read loop does.
/// </summary>
[MemoryDiagnoser]
public class CodecBenchmarks
{
    private readonly ArrayBufferWriter<byte> _buffer = new(1 << 20);
    private Replicate _frame;
    private byte[] _frameBody = [];
    private ClientRequest _request;
    private byte[] _requestBody = [];

    [Params(1, 64, 1024)]
    public int Entries { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var command = Fixtures.AppendCommand(64);
        var entries = new LogEntry[Entries];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new LogEntry(1001 + i, 3, EntryKind.Command, 0xABCDEF, 17 + i, 17, command, 1_764_650_000_000 + i);
        }

        _frame = new Replicate(3, new NodeAddress("127.0.0.1", 8090), 1000, 3, 990, 123456789, entries);
        _frameBody = MessageCodec.ToFrame(_frame)[MessageCodec.HeaderSize..];
        _request = new ClientRequest(0xABCDEF, 42, 40, RequestKind.Write, command);
        _requestBody = MessageCodec.ToFrame(_request)[MessageCodec.HeaderSize..];
    }

    [Benchmark]
    public int EncodeReplicate()
    {
        _buffer.ResetWrittenCount();
        return MessageCodec.Write(_buffer, _frame);
    }

    [Benchmark]
    public IMessage DecodeReplicate() => MessageCodec.Decode(MessageType.Replicate, _frameBody.AsSpan());

    [Benchmark]
    public int EncodeClientRequest()
    {
        _buffer.ResetWrittenCount();
        return MessageCodec.Write(_buffer, _request);
    }

    [Benchmark]
    public IMessage DecodeClientRequest() => MessageCodec.Decode(MessageType.ClientRequest, _requestBody.AsSpan());
}

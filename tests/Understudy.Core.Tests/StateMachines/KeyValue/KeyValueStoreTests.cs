using System.Buffers;
using System.Text;
using Understudy.Core.StateMachines.KeyValue;

namespace Understudy.Core.Tests.StateMachines.KeyValue;

/// <summary>The key-value store: every operation, expiry by log time, snapshots, and malformed commands.</summary>
public class KeyValueStoreTests
{
    private long _index;

    [Fact]
    public void Put_then_get_returns_the_value_and_the_version_is_the_entry_index()
    {
        var store = new KeyValueStore();

        var put = Apply(store, KeyValueCommands.Put("k", "v1"));
        Assert.Equal(KeyValueStatus.Ok, put.Status);
        Assert.Equal(_index, put.Version);

        var get = Get(store, "k");
        Assert.Equal(KeyValueStatus.Ok, get.Status);
        Assert.Equal("v1", get.ValueText);
        Assert.Equal(put.Version, get.Version);

        var again = Apply(store, KeyValueCommands.Put("k", "v2"));
        Assert.True(again.Version > put.Version, "a rewrite gets a later version");
        Assert.Equal("v2", Get(store, "k").ValueText);
    }

    [Fact]
    public void Get_of_a_missing_key_is_not_found()
    {
        var get = Get(new KeyValueStore(), "nope");

        Assert.Equal(KeyValueStatus.NotFound, get.Status);
        Assert.False(get.Exists);
        Assert.Null(get.ValueText);
    }

    [Fact]
    public void Delete_removes_a_key_and_deleting_a_missing_key_is_not_found()
    {
        var store = new KeyValueStore();
        Apply(store, KeyValueCommands.Put("k", "v"));

        Assert.Equal(KeyValueStatus.Ok, Apply(store, KeyValueCommands.Delete("k")).Status);
        Assert.Equal(KeyValueStatus.NotFound, Get(store, "k").Status);
        Assert.Equal(KeyValueStatus.NotFound, Apply(store, KeyValueCommands.Delete("k")).Status);
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void Compare_and_set_swaps_only_on_a_match_and_null_expected_means_absent()
    {
        var store = new KeyValueStore();

        Assert.Equal(KeyValueStatus.Ok, Apply(store, KeyValueCommands.CompareAndSet("k", null, "a")).Status);
        var second = Apply(store, KeyValueCommands.CompareAndSet("k", null, "b"));
        Assert.Equal(KeyValueStatus.Mismatch, second.Status);
        Assert.Equal("a", second.ValueText);

        var wrong = Apply(store, KeyValueCommands.CompareAndSet("k", "x", "c"));
        Assert.Equal(KeyValueStatus.Mismatch, wrong.Status);
        Assert.Equal("a", Get(store, "k").ValueText);

        Assert.Equal(KeyValueStatus.Ok, Apply(store, KeyValueCommands.CompareAndSet("k", "a", "c")).Status);
        Assert.Equal("c", Get(store, "k").ValueText);

        var onMissing = Apply(store, KeyValueCommands.CompareAndSet("other", "a", "c"));
        Assert.Equal(KeyValueStatus.Mismatch, onMissing.Status);
        Assert.False(onMissing.Exists);
        Assert.Equal(KeyValueStatus.NotFound, Get(store, "other").Status);
    }

    [Fact]
    public void Compare_and_set_tells_an_empty_value_from_an_absent_key()
    {
        var store = new KeyValueStore();

        Assert.Equal(KeyValueStatus.Mismatch, Apply(store, KeyValueCommands.CompareAndSet("k"u8, [], "v"u8)).Status);
        Apply(store, KeyValueCommands.Put("k", ""));
        Assert.Equal(KeyValueStatus.Mismatch, Apply(store, KeyValueCommands.CompareAndSet("k"u8, null, "v"u8)).Status);
        Assert.Equal(KeyValueStatus.Ok, Apply(store, KeyValueCommands.CompareAndSet("k"u8, [], "v"u8)).Status);
    }

    [Fact]
    public void Increment_counts_from_zero_and_refuses_non_integers_and_overflow()
    {
        var store = new KeyValueStore();

        var first = Apply(store, KeyValueCommands.Increment("n", 5));
        Assert.Equal(KeyValueStatus.Ok, first.Status);
        Assert.Equal(5, first.Number);
        Assert.Equal(2, Apply(store, KeyValueCommands.Increment("n", -3)).Number);
        Assert.Equal("2", Get(store, "n").ValueText);

        Apply(store, KeyValueCommands.Put("text", "abc"));
        Assert.Equal(KeyValueStatus.NotAnInteger, Apply(store, KeyValueCommands.Increment("text", 1)).Status);
        Assert.Equal("abc", Get(store, "text").ValueText);

        Apply(store, KeyValueCommands.Put("big", long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(KeyValueStatus.Overflow, Apply(store, KeyValueCommands.Increment("big", 1)).Status);

        Apply(store, KeyValueCommands.Put("neg", "-7"));
        Assert.Equal(-6, Apply(store, KeyValueCommands.Increment("neg", 1)).Number);
    }

    [Fact]
    public void A_key_expires_by_the_log_time_of_later_entries_never_by_the_clock()
    {
        var store = new KeyValueStore();
        Apply(store, KeyValueCommands.Put("k", "v", expireAfterMs: 1000), logTimeMs: 10_000);
        Apply(store, KeyValueCommands.Put("forever", "v"), logTimeMs: 10_000);

        Apply(store, KeyValueCommands.Put("other", "x"), logTimeMs: 10_999);
        Assert.Equal("v", Get(store, "k").ValueText);

        // The entry at exactly the expiry time already sees the key gone.
        var cas = Apply(store, KeyValueCommands.CompareAndSet("k", null, "new"), logTimeMs: 11_000);
        Assert.Equal(KeyValueStatus.Ok, cas.Status);
        Assert.Equal("new", Get(store, "k").ValueText);
        Assert.Equal("v", Get(store, "forever").ValueText);
    }

    [Fact]
    public void A_get_sees_expiry_by_the_last_applied_entry_and_a_put_without_ttl_clears_it()
    {
        var store = new KeyValueStore();
        Apply(store, KeyValueCommands.Put("a", "1", expireAfterMs: 100), logTimeMs: 1000);
        Apply(store, KeyValueCommands.Put("b", "1", expireAfterMs: 100), logTimeMs: 1000);
        Apply(store, KeyValueCommands.Put("b", "2"), logTimeMs: 1050);
        Apply(store, KeyValueCommands.Increment("c", 1), logTimeMs: 1050);

        Apply(store, KeyValueCommands.Put("d", "x"), logTimeMs: 1100);

        Assert.Equal(KeyValueStatus.NotFound, Get(store, "a").Status);
        Assert.Equal("2", Get(store, "b").ValueText);
        Assert.Equal(3, store.Count);
    }

    [Fact]
    public void Increment_and_compare_and_set_keep_the_expiry_of_the_key()
    {
        var store = new KeyValueStore();
        Apply(store, KeyValueCommands.Put("n", "1", expireAfterMs: 100), logTimeMs: 1000);
        Apply(store, KeyValueCommands.Increment("n", 1), logTimeMs: 1050);
        Apply(store, KeyValueCommands.CompareAndSet("n", "2", "3"), logTimeMs: 1060);

        Apply(store, KeyValueCommands.Put("tick", "x"), logTimeMs: 1100);

        Assert.Equal(KeyValueStatus.NotFound, Get(store, "n").Status);
    }

    [Fact]
    public void Snapshot_round_trips_and_is_the_same_bytes_whatever_the_insertion_order()
    {
        var one = new KeyValueStore();
        var two = new KeyValueStore();
        string[] keys = ["m", "a", "z", "b", "é", "aa"];
        var index = 0L;
        foreach (var key in keys)
        {
            one.Apply(KeyValueCommands.Put(key, "v-" + key, key == "z" ? 5000 : null), new ApplyContext(++index, 100));
        }

        // A store holding something else is wholly replaced by the restore.
        two.Apply(KeyValueCommands.Put("junk", "x", 1), new ApplyContext(100, 0));
        var snapshotOfOne = Snapshot(one);
        var restored = new KeyValueStore();
        restored.Restore(snapshotOfOne);
        two.Restore(snapshotOfOne);

        Assert.Equal(snapshotOfOne, Snapshot(restored));
        Assert.Equal(snapshotOfOne, Snapshot(two));
        Assert.Equal("v-é", Get(restored, "é").ValueText);
        Assert.Equal(3, Get(restored, "z").Version);
        Assert.Equal(100, restored.LogTimeMs);

        // Expiry survives the snapshot: the restored copy drops "z" when the log reaches its time.
        restored.Apply(KeyValueCommands.Put("tick", "x"), new ApplyContext(7, 5100));
        Assert.Equal(KeyValueStatus.NotFound, Get(restored, "z").Status);
    }

    [Fact]
    public void Two_stores_fed_the_same_commands_in_a_different_key_order_write_identical_snapshots()
    {
        var one = new KeyValueStore();
        var two = new KeyValueStore();
        one.Apply(KeyValueCommands.Put("x", "1"), new ApplyContext(1, 0));
        one.Apply(KeyValueCommands.Put("a", "2"), new ApplyContext(2, 0));
        one.Apply(KeyValueCommands.Put("q", "3"), new ApplyContext(3, 0));

        // A different history with the same final state (same versions): keys inserted in another order.
        two.Apply(KeyValueCommands.Put("q", "0"), new ApplyContext(1, 0));
        two.Apply(KeyValueCommands.Put("a", "0"), new ApplyContext(1, 0));
        two.Apply(KeyValueCommands.Put("x", "1"), new ApplyContext(1, 0));
        two.Apply(KeyValueCommands.Put("a", "2"), new ApplyContext(2, 0));
        two.Apply(KeyValueCommands.Put("q", "3"), new ApplyContext(3, 0));

        Assert.Equal(Snapshot(one), Snapshot(two));
    }

    [Fact]
    public void Restore_refuses_a_snapshot_with_keys_out_of_order()
    {
        var bytes = new byte[12 + (2 * (4 + 1 + 4 + 1 + 16))];
        var w = new WireWriter(bytes);
        w.WriteInt64(0);
        w.WriteInt32(2);
        foreach (var key in new[] { "b", "a" })
        {
            w.WriteBytes(Encoding.UTF8.GetBytes(key));
            w.WriteBytes("v"u8);
            w.WriteInt64(1);
            w.WriteInt64(0);
        }

        Assert.Throws<ProtocolException>(() => new KeyValueStore().Restore(bytes));
    }

    [Theory]
    [MemberData(nameof(MalformedCommands))]
    public void A_malformed_command_is_refused_by_Validate_with_a_reason_and_applies_as_malformed_without_a_change(string why, byte[] command)
    {
        var store = new KeyValueStore();
        Apply(store, KeyValueCommands.Put("k", "v"));
        var before = Snapshot(store);

        var error = store.Validate(command);

        Assert.False(string.IsNullOrWhiteSpace(error), $"{why}: Validate should refuse it");
        Assert.Equal(KeyValueStatus.Malformed, Apply(store, command).Status);
        Assert.Equal(before, Snapshot(store));
    }

    [Fact]
    public void Validate_accepts_every_well_formed_command()
    {
        var store = new KeyValueStore();

        Assert.Null(store.Validate(KeyValueCommands.Put("k", "v")));
        Assert.Null(store.Validate(KeyValueCommands.Put("k", "v", 1)));
        Assert.Null(store.Validate(KeyValueCommands.Delete("k")));
        Assert.Null(store.Validate(KeyValueCommands.CompareAndSet("k", null, "v")));
        Assert.Null(store.Validate(KeyValueCommands.CompareAndSet("k", "", "v")));
        Assert.Null(store.Validate(KeyValueCommands.Increment("k", -1)));
        Assert.Null(store.Validate(KeyValueCommands.Put("k", "")));
    }

    [Fact]
    public void A_malformed_query_answers_malformed()
    {
        var store = new KeyValueStore();

        Assert.Equal(KeyValueStatus.Malformed, KeyValueCommands.DecodeResult(store.Query([]).Span).Status);
        Assert.Equal(KeyValueStatus.Malformed, KeyValueCommands.DecodeResult(store.Query(KeyValueCommands.Put("k", "v")).Span).Status);
    }

    [Fact]
    public void Results_and_commands_describe_themselves()
    {
        Assert.Equal("put(k, 1 bytes, ttl 5 ms)", KeyValueCommands.Describe(KeyValueCommands.Put("k", "v", 5)));
        Assert.Equal(KeyValueOperation.Increment, KeyValueCommands.OperationOf(KeyValueCommands.Increment("k", 1)));
        Assert.Throws<ProtocolException>(() => KeyValueCommands.DecodeResult([9, 9]));
    }

    public static TheoryData<string, byte[]> MalformedCommands()
    {
        var truncated = KeyValueCommands.Put("key", "value");
        var trailing = KeyValueCommands.Delete("k").Concat(new byte[] { 0 }).ToArray();
        return new TheoryData<string, byte[]>
        {
            { "empty", [] },
            { "unknown operation", [99, 1, 0, 0, 0, (byte)'k'] },
            { "truncated put", truncated[..^3] },
            { "trailing bytes", trailing },
            { "empty key", KeyValueCommands.Put("", "v") },
            { "key over the limit", KeyValueCommands.Put(new string('k', KeyValueCommands.MaxKeyBytes + 1), "v") },
            { "value over the limit", KeyValueCommands.Put("k"u8, new byte[KeyValueCommands.MaxValueBytes + 1]) },
            { "zero expiry", KeyValueCommands.Put("k", "v", 0) },
            { "negative expiry", KeyValueCommands.Put("k", "v", -5) },
            { "a get sent as a command", KeyValueCommands.Get("k") },
            { "a boolean that is not one", [(byte)KeyValueOperation.Put, 1, 0, 0, 0, (byte)'k', 0, 0, 0, 0, 7] },
        };
    }

    private KeyValueResult Apply(KeyValueStore store, byte[] command, long logTimeMs = 0) =>
        KeyValueCommands.DecodeResult(store.Apply(command, new ApplyContext(++_index, logTimeMs)).Span);

    private static KeyValueResult Get(KeyValueStore store, string key) =>
        KeyValueCommands.DecodeResult(store.Query(KeyValueCommands.Get(key)).Span);

    private static byte[] Snapshot(IStateMachine store)
    {
        var buffer = new ArrayBufferWriter<byte>();
        store.WriteSnapshot(buffer);
        return buffer.WrittenSpan.ToArray();
    }
}

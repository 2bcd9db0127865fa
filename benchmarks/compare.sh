#!/usr/bin/env bash
# Understudy beside its peers, in one sitting on this machine, interleaved: the figures of docs/BENCHMARKS.md.
#
#   benchmarks/compare.sh [REPS] [SECONDS] [KILL_ROUNDS] [PEER_ROUNDS]
#
# REPS (3) interleaved repetitions of: Understudy throughput (fsync never), Redis RPUSH+WAIT 2, Understudy
# throughput (fsync always), Redis RPUSH+WAIT 2 with appendfsync always, Understudy (fsync never) with one
# connection per writer; each SECONDS (10) long with 64 clients and 64-byte messages (Understudy's writers share
# 4 client connections unless said otherwise), and the key-value store's puts and linearizable gets beside Redis
# SET + WAIT 2 and GET (measures kv-put, kv-get: opsPerSec). Then failover: Understudy kill -9 (KILL_ROUNDS, 50) and pause (10 rounds), Redis Sentinel
# (down-after 200 ms) and etcd (heartbeat 50 / election 250 ms), PEER_ROUNDS (5) each, alternating.
# Needs Debian's redis-server redis-sentinel etcd-server (apt-get install -y ...) and the peers' scripts
# (redis_cluster.sh, RedisLoad, sentinel_failover.py, etcd_failover.py), which live outside this repository: pass
# their folder as ANCHORS=DIR. Everything goes to runs/compare-TIME/: results.jsonl, each run's output,
# and `understudy bench report` makes summary.md and the plots from it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
anchors="${ANCHORS:-}"
if [ -z "$anchors" ] || [ ! -d "$anchors" ]; then
  echo "compare: set ANCHORS to the folder holding the peers' scripts (redis_cluster.sh, RedisLoad, ...), e.g. ANCHORS=/path/to/anchors benchmarks/compare.sh" >&2
  exit 2
fi
reps="${1:-3}"
seconds="${2:-10}"
kill_rounds="${3:-50}"
peer_rounds="${4:-5}"
out="$here/runs/compare-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
results="$out/results.jsonl"
understudy="$here/understudy"
redis_port=7500

for tool in redis-server redis-sentinel redis-cli etcd python3; do
  command -v "$tool" >/dev/null || { echo "compare: $tool is missing: apt-get install -y redis-server redis-sentinel etcd-server" >&2; exit 2; }
done
[ -f "$anchors/redis_cluster.sh" ] || { echo "compare: no peer scripts in $anchors (set ANCHORS=DIR)" >&2; exit 2; }

load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { echo "$(date +%H:%M:%S) $*" >&2; }

# The peers' load generator, built from a copy outside this repository (so none of our build rules apply to
# it, and nothing is written next to the anchors).
build="$(mktemp -d)"
cp -r "$anchors/RedisLoad" "$build/RedisLoad"
dotnet build "$build/RedisLoad/RedisLoad.csproj" -c Release -o "$build/out" --nologo -v quiet -clp:ErrorsOnly >&2
redisload="$build/out/RedisLoad.dll"
"$understudy" --help >/dev/null # build first, outside any measurement

echo "{\"system\":\"machine\",\"nproc\":$(nproc),\"load\":\"$(load)\",\"kernel\":\"$(uname -r)\",\"started\":\"$(date -Iseconds)\"}" >>"$results"

redis_stop() {
  for p in 0 1 2; do redis-cli -p $((redis_port + p)) shutdown nosave >/dev/null 2>&1 || true; done
  sleep 0.5
}

redis_throughput() { # rep mode(never|always)
  local rep=$1 mode=$2 arg="" line
  [ "$mode" = always ] && arg=always
  redis_stop
  bash "$anchors/redis_cluster.sh" "$redis_port" $arg >/dev/null
  for _ in $(seq 1 50); do
    [ "$(redis-cli -p $redis_port info replication 2>/dev/null | grep -c 'state=online')" = 2 ] && break
    sleep 0.2
  done
  local before; before=$(load)
  line=$(dotnet "$redisload" "$redis_port" 64 "$seconds" 2 | tail -1)
  redis_stop
  echo "$line" >>"$out/redis-$mode-$rep.txt"
  python3 - "$line" "$rep" "$mode" "$before" "$(load)" >>"$results" <<'PY'
import json, re, sys
line, rep, mode, before, after = sys.argv[1:]
m = re.search(r"(\d+) writes/s p50=([\d.]+)ms p99=([\d.]+)ms", line)
print(json.dumps({"system": "redis", "measure": f"throughput-{mode}", "rep": int(rep), "writesPerSec": float(m[1]),
                  "p50": float(m[2]), "p99": float(m[3]), "loadBefore": before, "loadAfter": after}))
PY
  say "redis WAIT 2 ($mode) rep $rep: $line"
}

understudy_throughput() { # rep fsync [connections]
  local rep=$1 fsync=$2 conns=${3:-4} tag=$2
  [ "$conns" != 4 ] && tag="$fsync-conn$conns"
  "$understudy" bench throughput --clients 64 --connections "$conns" --seconds "$seconds" --payload 64 --fsync "$fsync" --json --out "$out/understudy-throughput-$tag-$rep" >"$out/understudy-throughput-$tag-$rep.json" || true # exit 1: a server left the in-sync set (reported)
  python3 - "$out/understudy-throughput-$tag-$rep.json" "$rep" "$tag" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"system": "understudy", "measure": f"throughput-{sys.argv[3]}", "rep": int(sys.argv[2]), "connections": r["connections"], "writesPerSec": r["writesPerSec"],
                  "p50": r["latencyMs"]["p50"], "p99": r["latencyMs"]["p99"], "p999": r["latencyMs"]["p999"], "inSync": r["inSyncThroughout"],
                  "cpu": r["cpu"], "loadBefore": r["loadBefore"], "loadAfter": r["loadAfter"]}))
PY
  say "understudy throughput ($tag) rep $rep: $(tail -1 "$results" | cut -c1-160)"
}

redis_kv() { # rep mode(set|get): SET + WAIT 2, or GET on the master, 64 connections over 1000 keys
  local rep=$1 mode=$2 line
  redis_stop
  bash "$anchors/redis_cluster.sh" "$redis_port" >/dev/null
  for _ in $(seq 1 50); do
    [ "$(redis-cli -p $redis_port info replication 2>/dev/null | grep -c 'state=online')" = 2 ] && break
    sleep 0.2
  done
  local before; before=$(load)
  line=$(dotnet "$redisload" "$redis_port" 64 "$seconds" 2 "$mode" 1000 | tail -1)
  redis_stop
  python3 - "$line" "$rep" "$mode" "$before" "$(load)" >>"$results" <<'PY'
import json, re, sys
line, rep, mode, before, after = sys.argv[1:]
m = re.search(r"(\d+) (?:writes|reads)/s p50=([\d.]+)ms p99=([\d.]+)ms", line)
print(json.dumps({"system": "redis", "measure": "kv-put" if mode == "set" else "kv-get", "rep": int(rep), "opsPerSec": float(m[1]),
                  "p50": float(m[2]), "p99": float(m[3]), "loadBefore": before, "loadAfter": after}))
PY
  say "redis ${mode^^} rep $rep: $line"
}

understudy_kv() { # rep get-ratio(0|1): all puts (beside SET + WAIT 2) or all linearizable gets (beside GET)
  local rep=$1 ratio=$2 tag
  tag=$([ "$ratio" = 0 ] && echo put || echo get)
  "$understudy" bench throughput --state-machine kv --get-ratio "$ratio" --keys 1000 --clients 64 --seconds "$seconds" --payload 64 --fsync never --json --out "$out/understudy-kv-$tag-$rep" >"$out/understudy-kv-$tag-$rep.json" || true # exit 1: reported in the JSON
  python3 - "$out/understudy-kv-$tag-$rep.json" "$rep" "$tag" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
get = sys.argv[3] == "get"
lat = r["readLatencyMs"] if get else r["latencyMs"]
print(json.dumps({"system": "understudy", "measure": f"kv-{sys.argv[3]}", "rep": int(sys.argv[2]), "opsPerSec": r["readsPerSec"] if get else r["writesPerSec"],
                  "p50": lat["p50"], "p99": lat["p99"], "inSync": r["inSyncThroughout"], "keysValid": r["keyValueCheck"]["valid"],
                  "loadBefore": r["loadBefore"], "loadAfter": r["loadAfter"]}))
PY
  say "understudy kv $tag rep $rep: $(tail -1 "$results" | cut -c1-160)"
}

say "throughput: $reps repetitions of $seconds s, interleaved (load $(load))"
for rep in $(seq 1 "$reps"); do
  understudy_throughput "$rep" never
  redis_throughput "$rep" never
  understudy_throughput "$rep" always
  redis_throughput "$rep" always
  # One connection per writer, as the Redis load generator has (the client library is meant to be shared).
  understudy_throughput "$rep" never 64
  # The key-value store beside Redis SET + WAIT 2 and GET (issue 11's targets: 1.5x and 1.0x).
  understudy_kv "$rep" 0
  redis_kv "$rep" set
  understudy_kv "$rep" 1
  redis_kv "$rep" get
done

understudy_failover() { # fault rounds
  local fault=$1 rounds=$2
  "$understudy" bench failover --rounds "$rounds" --fault "$fault" --json --out "$out/understudy-failover-$fault" >"$out/understudy-failover-$fault.json" || true
  python3 - "$out/understudy-failover-$fault.json" "$fault" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"system": "understudy", "measure": f"failover-{sys.argv[2]}", "rounds": r["rounds"], "samples": [s["unavailableMs"] for s in r["samples"]],
                  "lost": r["lost"], "duplicated": r["duplicated"], "verdict": r["verdict"], "loadBefore": r["loadBefore"], "loadAfter": r["loadAfter"]}))
PY
  say "understudy failover ($fault): $(python3 -c "import json;r=json.load(open('$out/understudy-failover-$fault.json'));print(r['unavailableMs'], 'lost', r['lost'])")"
}

peer_failover() { # name command...
  local name=$1; shift
  local before; before=$(load)
  ( cd "$anchors" && timeout 900 python3 "$@" ) >"$out/$name.txt" 2>&1 || true
  python3 - "$out/$name.txt" "$name" "$before" "$(load)" >>"$results" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
samples = [float(x) for x in re.findall(r"unavailable=(\d+)ms", text)]
lost = [int(x) for x in re.findall(r"lost_acked=(\d+)", text)]
failed = len(re.findall(r"unavailable=None", text))
print(json.dumps({"system": sys.argv[2], "measure": "failover-kill", "rounds": len(samples), "samples": samples, "lost": sum(lost),
                  "noRecovery": failed, "loadBefore": sys.argv[3], "loadAfter": sys.argv[4]}))
PY
  say "$name: $(grep -E 'median' "$out/$name.txt" || tail -1 "$out/$name.txt")"
}

say "failover (load $(load))"
understudy_failover kill "$kill_rounds"
peer_failover sentinel sentinel_failover.py 200 "$peer_rounds"
peer_failover etcd etcd_failover.py 50 250 "$peer_rounds"
understudy_failover pause 10
echo "{\"system\":\"machine\",\"load\":\"$(load)\",\"finished\":\"$(date -Iseconds)\"}" >>"$results"

"$understudy" bench report "$out"
say "done: $out (results.jsonl, summary.md, plots)"
